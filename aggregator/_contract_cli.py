"""The contract kit's commands, for a participant of this aggregator's workflow:
``diff`` judges a schema change against the workflow's rules, ``verify`` runs the
kit's cases and ``stub`` stands in for the participant, each reading the
participant's states, URL, timeout and body cap from the configuration.

``python -m contracts`` has the same commands without the aggregator; here the
options a configuration already holds need not be repeated.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from contracts import Contract, GenericView
from contracts._evolution import Coverage, SchemaFileError, compare_files, report
from contracts._kit import KitError
from contracts.cli import (
    STUB_DESCRIPTION,
    add_stub_options,
    add_verify_options,
    run_stub,
    run_verify,
)

from ._cli import CliError, config_path, load_settings
from ._errors import ConfigError
from ._rules import BUILTIN_DEFINITIONS, ORDER_FULFILMENT, WorkflowDefinition
from ._settings import CONFIG_ENV, ParticipantSettings, Settings


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = commands.add_parser(
        "diff",
        help="judge a participant's new schema against its old one and this workflow's rules",
    )
    compare.add_argument("old", help="the schema the aggregator reads with now")
    compare.add_argument("new", help="the participant's new schema")
    compare.add_argument(
        "--config",
        help="TOML file whose workflow's rules must cover added states "
        "(default: the built-in order_fulfilment workflow)",
    )
    compare.add_argument("--workflow", help="the workflow (default: the configuration's)")
    compare.add_argument(
        "--participant", help="whose schema it is (default: NEW's name up to its first dot)"
    )

    verify = commands.add_parser(
        "verify",
        help="run the contract kit against a participant of this configuration",
        description="The kit's cases for one participant of the configured workflow: a"
        " declared one by the generic contract and its definition's states, asked at its"
        " configured URL, within its configured timeout_ms and max_body_bytes.",
    )
    _configured(verify)
    add_verify_options(verify, configured=True)

    stub = commands.add_parser(
        "stub",
        help="stand in for a participant of this configuration",
        description=STUB_DESCRIPTION + " The path and states are the configuration's.",
    )
    _configured(stub)
    add_stub_options(stub, port_help="port (default: the one in the participant's URL)")


def _configured(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"TOML file (default: ${CONFIG_ENV} or aggregator.toml)")
    parser.add_argument("--workflow", help="the workflow (default: the configuration's)")
    parser.add_argument("--participant", required=True, help="one of the workflow's participants")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "diff":
            return diff(args)
        found = _participant(args)
        if args.command == "verify":
            return verify(args, found)
        return stub(args, found)
    except KitError as exc:
        raise CliError(str(exc), 2) from None


# --- diff ---------------------------------------------------------------------------


def diff(args: argparse.Namespace) -> int:
    """A participant's schema change judged as ``python -m contracts diff`` does, and
    an added state against the rules of this aggregator's workflow: a state no status
    rule covers would be marked invalid, so it is breaking."""
    if args.config is None:
        name = args.workflow or ORDER_FULFILMENT.name
        definition = BUILTIN_DEFINITIONS.get(name)
        if definition is None:
            raise CliError(
                f"--workflow: {name!r} is not built in ({sorted(BUILTIN_DEFINITIONS)}); "
                "pass --config with the file that declares it",
                2,
            )
    else:
        definition = _definition(_settings(args))
    participant = args.participant or Path(args.new).name.split(".")[0]
    if participant not in definition.by_name:
        said = "--participant" if args.participant else f"{args.new}: its name"
        hint = "" if args.participant else "; pass --participant NAME"
        raise CliError(f"{said} {_not_in(definition)}{hint}", 2)
    coverage = Coverage(definition.name, participant, definition.covered_states(participant))
    try:
        text, code = report(compare_files(Path(args.old), Path(args.new), coverage=coverage))
    except SchemaFileError as exc:
        raise CliError(str(exc), 2) from None
    print(text)
    return code


# --- verify and stub ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Configured:
    """A participant as the configuration has it: its contract, where it answers."""

    contract: Contract
    base_url: str  # scheme://host:port
    settings: ParticipantSettings


def _participant(args: argparse.Namespace) -> Configured:
    settings = _settings(args, config_path(args.config))
    definition = _definition(settings)
    declared = definition.by_name.get(args.participant)
    if declared is None:
        raise CliError(f"--participant {_not_in(definition)}", 2)
    configured = settings.participants[args.participant]
    url = urlsplit(configured.url)
    base_url = f"{url.scheme.lower()}://{url.netloc}"
    path = url.path + (f"?{url.query}" if url.query else "")
    # A built-in participant keeps its own model; a declared one, the generic contract.
    states = declared.states if declared.model is GenericView else ()
    try:
        contract = Contract.of(args.participant, states=states, path=path)
    except ValueError as exc:
        raise CliError(f"participants.{args.participant}: {exc}", 2) from None
    return Configured(contract, base_url, configured)


def verify(args: argparse.Namespace, found: Configured) -> int:
    if args.budget_ms is None:
        args.budget_ms = found.settings.timeout_ms
    if args.max_body_bytes is None:
        args.max_body_bytes = found.settings.max_body_bytes
    return run_verify(args, found.contract, found.base_url)


def stub(args: argparse.Namespace, found: Configured) -> int:
    if args.port is None:
        args.port = urlsplit(found.base_url).port or 0
    return run_stub(args, found.contract)


# --- shared -------------------------------------------------------------------------


def _settings(args: argparse.Namespace, path: Path | None = None) -> Settings:
    settings = load_settings(path or Path(args.config))
    if args.workflow is not None:
        settings = settings.model_copy(update={"workflow": args.workflow})
    return settings


def _definition(settings: Settings) -> WorkflowDefinition:
    try:
        return settings.definition()
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None


def _not_in(definition: WorkflowDefinition) -> str:
    return (
        f"names no participant of workflow {definition.name} "
        f"(it has {', '.join(definition.by_name)})"
    )
