"""The aggregator's one exception tree.

Participant failures are never exceptions: they are outcome values in the
answer. Exceptions are for mistakes made by the caller or the configuration::

    AggregatorError
    ├── InvalidWorkflowId   a workflow id that fails validation (also a ValueError)
    ├── ConfigError         settings or a workflow definition that cannot work
    ├── NotOpen             the aggregator was used outside ``async with``
    ├── TooManyWatchers     a watch beyond the configured limits
    └── WatchFailed         a watch's poller failed (the cause is chained)
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every exception the aggregator raises on purpose."""


class InvalidWorkflowId(AggregatorError, ValueError):
    """The workflow id is not one the aggregator will put in a participant URL."""


class ConfigError(AggregatorError):
    """The settings or a workflow definition cannot work; the message names the field."""


class NotOpen(AggregatorError):
    """The aggregator was asked for a status before ``async with`` opened it."""


class TooManyWatchers(AggregatorError):
    """A watch was refused: the limit of watchers in all, or of one workflow, is reached."""


class WatchFailed(AggregatorError):
    """A watch's poller failed; ``__cause__`` says why. Each watcher gets its own."""
