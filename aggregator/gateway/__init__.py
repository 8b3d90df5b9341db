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

__all__ = ["GATEWAY", "Gateway", "configure_logging", "create_app", "gunicorn_app", "process_app"]
