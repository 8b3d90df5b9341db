"""``status-aggregator``: serve the gateway, ask for one status or follow it, check
or write a configuration, and run the contract kit for its participants (``diff``,
``verify``, ``stub``: ``_contract_cli``).

Exit codes: 0 success; 1 the answer is not a status (not found, unavailable,
gateway unreachable, port taken), or the output's reader went away; 2 a usage,
configuration or id mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from contracts import WorkflowStatus

from ._aggregator import StatusAggregator
from ._errors import AggregatorError, ConfigError
from ._merge import Disposition
from ._settings import CONFIG_ENV, Settings
from ._tracing_setup import configure as configure_tracing
from ._version import __version__

PROG = "status-aggregator"
log = logging.getLogger("aggregator.cli")


class CliError(Exception):
    """A one-line message for the user, and the exit code to leave with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def config_path(given: str | None) -> Path:
    return Path(given or os.environ.get(CONFIG_ENV) or "aggregator.toml")


def load_settings(path: Path) -> Settings:
    """The file's settings with STATUS_AGGREGATOR_* environment overrides applied."""
    try:
        return Settings.from_file(path, env=os.environ)
    except ConfigError as exc:
        hint = "" if path.exists() else f"; '{PROG} init {path}' writes a commented example"
        raise CliError(f"{exc}{hint}", 2) from None


# --- serve -------------------------------------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _banner(message: str) -> str:
    return message.replace("=", "").replace("(Press CTRL+C to quit)", "").strip()


def _serve_one(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    from aiohttp import web

    from .gateway import process_app

    # Before the gateway opens its aggregator, which looks the tracer provider up then;
    # a worker of several stays quiet: the parent has said any warning once.
    warning = configure_tracing(os.environ)
    if warning is not None and not reuse_port:
        print(f"{PROG}: {warning}", file=sys.stderr)

    try:
        web.run_app(
            process_app(settings),
            host=host,
            port=port,
            reuse_port=reuse_port or None,
            shutdown_timeout=settings.gateway.shutdown_timeout_ms / 1000,
            access_log=None,
            handler_cancellation=True,  # a client that goes away takes its work with it
            print=lambda message: log.info("%s", _banner(message)),
            loop=_new_loop(),
        )
    except OSError as exc:
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise CliError(f"cannot listen on {host}:{port}: {reason}", 1) from None


def _serve_worker(settings: Settings, host: str, port: int) -> None:
    try:
        _serve_one(settings, host, port, reuse_port=True)
    except CliError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        sys.exit(exc.code)


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    if workers == 1:
        _serve_one(settings, host, port, reuse_port=False)
        return 0
    if port == 0:
        raise CliError("--workers needs a fixed --port: the workers share it", 2)
    warning = configure_tracing(os.environ, install=False)
    if warning is not None:
        print(f"{PROG}: {warning}", file=sys.stderr)
    from .gateway import METRICS_DIRECTORY_ENV as DIRECTORY_ENV

    if os.environ.get(DIRECTORY_ENV):
        return _serve_workers(settings, host, port, workers)
    # The workers' shared metrics directory: theirs alone, gone when they are.
    with tempfile.TemporaryDirectory(prefix="status-aggregator-metrics-") as shared:
        os.environ[DIRECTORY_ENV] = shared
        try:
            return _serve_workers(settings, host, port, workers)
        finally:
            del os.environ[DIRECTORY_ENV]


def _serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_serve_worker, args=(settings, host, port), name=f"worker-{n}")
        for n in range(workers)
    ]
    for child in children:
        child.start()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A worker that ends unasked (killed, crashed) takes the service down with exit 1,
    # so that whatever supervises it starts it again: no half of the port goes dark.
    running = {child.sentinel: child for child in children}
    failed = False
    while running:
        for ended in multiprocessing.connection.wait(list(running)):
            assert isinstance(ended, int)  # a process sentinel
            child = running.pop(ended)
            child.join()
            code = child.exitcode or 0
            # Asked to stop, a worker still starting ends by the signal itself.
            if code == 0 or (stopping and code == -signal.SIGTERM):
                continue
            failed = True
            if not stopping:
                how = f"by signal {-code}" if code < 0 else f"with exit code {code}"
                print(
                    f"{PROG}: {child.name} (pid {child.pid}) ended {how}; stopping the others",
                    file=sys.stderr,
                )
                stop()
    return 1 if failed else 0


# --- status ------------------------------------------------------------------------


def gateway_request(
    base_url: str, workflow_id: str, route: str, api_key: str | None
) -> tuple[str, dict[str, str]]:
    """The URL of one workflow's ``route`` (status, events) on a gateway, and the
    credentials to send with it."""
    url = f"{base_url.rstrip('/')}/workflows/{quote(workflow_id, safe='')}/{route}"
    return url, {"Authorization": f"Bearer {api_key}"} if api_key else {}


def refusal(status: int, payload: object) -> CliError:
    """A gateway's answer that is not a status, as one line: its problem's detail;
    exit code 2 for a mistake of the caller's (400, 401), else 1."""
    detail = payload.get("detail", "") if isinstance(payload, dict) else ""
    return CliError(f"HTTP {status}: {detail}", 2 if status in (400, 401) else 1)


async def _from_gateway(base_url: str, workflow_id: str, api_key: str | None) -> dict[str, Any]:
    url, headers = gateway_request(base_url, workflow_id, "status", api_key)
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as response,
        ):
            payload = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        reason = str(exc) or type(exc).__name__
        raise CliError(f"cannot read {url}: {reason}", 1) from None
    if response.status != 200:
        raise refusal(response.status, payload)
    if not isinstance(payload, dict):
        raise CliError(f"{url} did not answer a status", 1)
    return payload


async def _embedded(settings: Settings, workflow_id: str) -> dict[str, Any]:
    """The status, asking the participants directly; like the gateway, an answer
    that is not a status (no participant knows the workflow, or none could be
    read) is an error, exit code 1."""
    from .gateway import NOT_FOUND_DETAIL  # the gateway's words, in one place

    # Each part shows why it failed; the full detail lines are for a gateway's log.
    logging.getLogger("aggregator.client").addHandler(logging.NullHandler())
    async with StatusAggregator(settings) as agg:
        answer = await agg.answer(workflow_id)
    status = answer.status()
    if answer.disposition is Disposition.NOT_FOUND:
        raise CliError(f"{workflow_id}: {NOT_FOUND_DETAIL}", 1)
    if answer.disposition is Disposition.UNAVAILABLE:
        reasons = "; ".join(
            f"{name}: {part.error.detail if part.error else part.outcome}"
            for name, part in status.participants.items()
        )
        raise CliError(f"{workflow_id}: no participant could be read ({reasons})", 1)
    return status.model_dump(mode="json")


def render_table(status: WorkflowStatus, console: Console) -> None:
    console.print(status_view(status))


def status_view(status: WorkflowStatus) -> Group:
    """The status as a headline, a table of its parts, its timeline and anomalies."""
    complete = "complete" if status.complete else "incomplete"
    lines: list[RenderableType] = [
        f"[bold]{escape(status.workflow_id)}[/bold]: [bold cyan]{status.status}[/bold cyan] "
        f"({complete}; workflow {status.workflow}, decided by "
        f"{', '.join(status.derived_from) or 'nothing'})"
    ]
    if status.since is not None:
        lines.append(f"since {_when(status.since)}")
    table = Table(show_edge=False)
    for column in ("participant", "outcome", "source", "age", "state", "updated", "version"):
        table.add_column(column)
    table.add_column("error")
    for name, part in status.participants.items():
        age = "-" if part.age_ms is None else f"{part.age_ms / 1000:.1f}s"
        error = f"{part.error.kind}: {part.error.detail}" if part.error else ""
        table.add_row(
            name,
            part.outcome,
            part.source or "-",
            age,
            part.state or "-",
            "-" if part.updated_at is None else _when(part.updated_at),
            "-" if part.version is None else str(part.version),
            Text(error),
        )
    lines.append(table)
    if status.timeline:
        steps = ", then ".join(f"{step.participant} {step.state}" for step in status.timeline)
        lines.append(f"timeline: {steps}")
    for anomaly in status.anomalies:
        unconfirmed = (
            "" if anomaly.confirmed else " (unconfirmed: a participant could not be asked again)"
        )
        lines.append(
            f"[yellow]anomaly {anomaly.code}[/yellow]: {escape(anomaly.message)}{unconfirmed}"
        )
    return Group(*lines)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def show_status(args: argparse.Namespace) -> int:
    if args.gateway:
        payload = asyncio.run(_from_gateway(args.gateway, args.workflow_id, args.api_key))
    else:
        settings = load_settings(config_path(args.config))
        try:
            payload = asyncio.run(_embedded(settings, args.workflow_id))
        except AggregatorError as exc:
            raise CliError(str(exc), 2) from None
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    render_table(WorkflowStatus.model_validate(payload), Console())
    return 0


# --- watch --------------------------------------------------------------------------


def watch(args: argparse.Namespace) -> int:
    """Follow a workflow until it is over (exit 0), or until interrupted (130)."""
    from . import _watch_cli as shown

    console = Console()
    if args.gateway:
        changes = shown.from_gateway(args.gateway, args.workflow_id, args.api_key)
    else:
        settings = load_settings(config_path(args.config))
        try:
            settings.definition()  # a bad id or config is a usage mistake, said at once
            StatusAggregator(settings).validate_id(args.workflow_id)
        except AggregatorError as exc:
            raise CliError(str(exc), 2) from None
        logging.getLogger("aggregator.client").addHandler(logging.NullHandler())
        changes = shown.embedded(settings, args.workflow_id)
    if args.json or not console.is_terminal:
        asyncio.run(shown.follow(changes, shown.printer(console, as_json=args.json)))
    else:
        with shown.LiveTable(console) as table:
            asyncio.run(shown.follow(changes, table))
    return 0


# --- init ---------------------------------------------------------------------------


def init(path: Path, *, force: bool) -> int:
    """Write the commented example configuration (every key, with its default)."""
    if path.exists() and not force:
        raise CliError(f"{path}: already exists; pass --force to replace it", 2)
    example = resources.files("aggregator").joinpath("example.toml").read_text(encoding="utf-8")
    try:
        path.write_text(example, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot write: {exc.strerror or exc}", 2) from None
    print(f"{path}: written; edit the participants' URLs, then: {PROG} serve --config {path}")
    return 0


# --- check-config ------------------------------------------------------------------


def _store(settings: Settings) -> str:
    from ._shared_store import shown_url  # no client loaded: the URL only

    cache = settings.cache
    return shown_url(cache.backend) if cache.shared else "memory"


def check_config(path: Path) -> int:
    settings = load_settings(path)
    definition = settings.definition()
    print(
        f"{path}: ok (workflow {definition.name}; participants "
        f"{', '.join(definition.by_name)}; gateway {settings.gateway.host}:{settings.gateway.port};"
        f" parts kept in {_store(settings)})"
    )
    return 0


# --- entry point -------------------------------------------------------------------


def _parser(*, describe_plugins: bool = False) -> argparse.ArgumentParser:
    """The command line's parser; with ``describe_plugins`` (for ``--help``), the
    plugin commands are loaded to say what each does."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Reconstruct choreographed workflows' status on demand."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the HTTP gateway")
    run.add_argument("--config", help=f"TOML file (default: ${CONFIG_ENV} or aggregator.toml)")
    run.add_argument("--host", help="address to listen on (default: gateway.host)")
    run.add_argument("--port", type=int, help="port to listen on (default: gateway.port)")
    run.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    run.add_argument("--log-json", action="store_true", help="log JSON lines")

    for name, said, json_help in (
        ("status", "show one workflow's status", "print the JSON answer"),
        (
            "watch",
            "follow one workflow's status: a line per change, until it is over",
            "print a JSON line per change",
        ),
    ):
        one = commands.add_parser(name, help=said)
        one.add_argument("workflow_id")
        source = one.add_mutually_exclusive_group()
        source.add_argument("--gateway", metavar="URL", help="through a running gateway")
        source.add_argument("--config", help="ask the participants directly, with this file")
        one.add_argument("--api-key", help="credential for a gateway with authentication on")
        one.add_argument("--json", action="store_true", help=json_help)

    from . import _contract_cli

    _contract_cli.add_parsers(commands)

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument(
        "file", nargs="?", help=f"TOML file (default: ${CONFIG_ENV} or aggregator.toml)"
    )
    write = commands.add_parser("init", help="write a commented example configuration")
    write.add_argument("file", nargs="?", default="aggregator.toml", help="(default: %(default)s)")
    write.add_argument("--force", action="store_true", help="replace an existing file")
    plugins = _plugins()
    for name in sorted(plugins.keys() - _OWN_COMMANDS):  # ours are never shadowed
        said = (plugins[name].load().__doc__ or "").strip() if describe_plugins else ""
        commands.add_parser(name, help=f"{said or 'a command'} (see '{PROG} {name} --help')")
    return parser


COMMANDS_GROUP = "status_aggregator.commands"


def _plugins() -> dict[str, metadata.EntryPoint]:
    """Commands installed above the library (the demo, the reference participants):
    entry points of ``COMMANDS_GROUP``, each a ``main(argv) -> exit code``."""
    return {point.name: point for point in metadata.entry_points(group=COMMANDS_GROUP)}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # The reader went away (`... | head -1`): nothing more to say, and no traceback,
        # now or when the interpreter flushes the output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


_CONTRACT_COMMANDS = frozenset({"diff", "verify", "stub"})  # in _contract_cli
_OWN_COMMANDS = frozenset({"serve", "status", "watch", "check-config", "init"}) | _CONTRACT_COMMANDS


def _main(argv: list[str]) -> int:
    if argv[:1] and argv[0] not in _OWN_COMMANDS and not argv[0].startswith("-"):
        plugin = _plugins().get(argv[0])
        if plugin is not None:
            command: Callable[[list[str]], int] = plugin.load()
            return command(argv[1:])
    args = _parser(describe_plugins=not argv or "-h" in argv or "--help" in argv).parse_args(argv)
    try:
        if args.command == "serve":
            settings = load_settings(config_path(args.config))
            if args.log_json:
                gateway = settings.gateway.model_copy(update={"log_format": "json"})
                settings = settings.model_copy(update={"gateway": gateway})
            if args.workers < 1:
                raise CliError("--workers must be at least 1", 2)
            host = args.host or settings.gateway.host
            port = settings.gateway.port if args.port is None else args.port
            return serve(settings, host, port, args.workers)
        if args.command == "status":
            return show_status(args)
        if args.command == "watch":
            return watch(args)
        if args.command == "init":
            return init(Path(args.file), force=args.force)
        if args.command in _CONTRACT_COMMANDS:
            from . import _contract_cli

            return _contract_cli.run(args)
        return check_config(config_path(args.file))
    except CliError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
