"""The HTTP gateway over StatusAggregator.

Example::

    from aiohttp import web
    from aggregator import Settings
    from aggregator.gateway import create_app

    web.run_app(
        create_app(Settings.from_file("aggregator.toml")), port=8080, handler_cancellation=True
    )
"""

from ._app import GATEWAY, Gateway, create_app, gunicorn_app, process_app
from ._logs import configure_logging
from ._render import HTTP_STATUS, NOT_FOUND_DETAIL, UNAVAILABLE_DETAIL
from ._workers import DIRECTORY_ENV as METRICS_DIRECTORY_ENV

__all__ = [
    "GATEWAY",
    "HTTP_STATUS",
    "METRICS_DIRECTORY_ENV",
    "NOT_FOUND_DETAIL",
    "UNAVAILABLE_DETAIL",
    "Gateway",
    "configure_logging",
    "create_app",
    "gunicorn_app",
    "process_app",
]
