"""``python -m contracts``: the participant contract's tools.

    python -m contracts verify payment --base-url http://127.0.0.1:8101 \\
        --state-hook http://127.0.0.1:8101/_contract/state [--junit-xml report.xml]
    python -m contracts verify flight --states pending,booked --path '/flights/{workflow_id}' ...
    python -m contracts stub payment --port 8101
    python -m contracts pact payment --out pacts/
    python -m contracts diff old/payment.v1.json new/payment.v1.json
    python -m contracts schemas [--check]

A participant declared in an aggregator's configuration (not payment, inventory
or shipping) gives its states and query path; ``status-aggregator verify`` and
``status-aggregator stub`` read both from the configuration instead, with the
same options as here (``add_verify_options``, ``run_verify`` ...).

Exit codes: 0 passed (or no breaking change); 1 a case failed (or a breaking
change); 2 the command itself was asked for wrongly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from ._evolution import SchemaFileError, compare_files, report
from ._kit import KitError, Verifier, contract_of
from ._pact import write_pact
from ._report import junit_xml, table
from ._schemas import SCHEMA_DIR, outdated_schemas, write_schemas
from ._stub import STATE_HOOK, Stub, StubOptions
from ._views import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS, Contract

PROG = "python -m contracts"


def _prog() -> str:
    """The name the command was called by: ``participant-contract`` or ``python -m contracts``."""
    called = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return called if called == "participant-contract" else PROG


def _participant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "participant", metavar="PARTICIPANT", help="payment, inventory, shipping, or a declared one"
    )
    parser.add_argument(
        "--states",
        type=_states,
        default=(),
        metavar="A,B,...",
        help="a declared participant's states, in its definition's order",
    )
    parser.add_argument(
        "--path",
        help="query path holding {workflow_id} (default: a built-in participant's usual one)",
    )


def _states(text: str) -> tuple[str, ...]:
    states = tuple(state.strip() for state in text.split(","))
    if not all(states):
        raise argparse.ArgumentTypeError(f"{text!r}: states are separated by single commas")
    return states


def add_verify_options(parser: argparse.ArgumentParser, *, configured: bool = False) -> None:
    """The options of ``verify`` after the participant and its URL. ``configured``:
    the budget and the body cap default to the participant's configured values."""
    parser.add_argument("--state-hook", metavar="URL", help="where to POST provider states")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long the kit waits for any one answer (default: %(default)s); the"
        " aggregator's own, much shorter timeout is --budget-ms",
    )
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=None if configured else DEFAULT_TIMEOUT_MS,
        metavar="MS",
        help="the aggregator's timeout_ms for this participant: the p99 of answer times"
        " must stay within it (default: "
        + ("the configured timeout_ms)" if configured else "%(default)s)"),
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=None if configured else DEFAULT_MAX_BODY_BYTES,
        metavar="BYTES",
        help="the aggregator's max_body_bytes for this participant: larger answers are"
        " refused (default: "
        + ("the configured max_body_bytes)" if configured else "%(default)s, 256 KiB)"),
    )
    parser.add_argument(
        "--stateless-only", action="store_true", help="run only the cases needing no provider state"
    )
    parser.add_argument("--junit-xml", type=Path, metavar="FILE", help="also write a JUnit report")


def add_stub_options(parser: argparse.ArgumentParser, *, port_help: str | None = None) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=None, help=port_help or "port (default: any free one)"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, metavar="MS", help="delay every answer (default: 0)"
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="answer this share with a 503 problem (default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="decides which answers fail")


STUB_DESCRIPTION = (
    "Answers GET on the participant's query path: an id set up through POST"
    " /_contract/state in that state, an id '<state>-anything' in that state, any other id"
    " (e.g. 'missing-1') a 404."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(), description="The participant query contract, v1."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="check a running participant against its contract")
    _participant(verify)
    verify.add_argument(
        "--base-url", required=True, help="the provider, e.g. http://127.0.0.1:8101"
    )
    add_verify_options(verify)

    diff = commands.add_parser(
        "diff",
        help="classify the changes between two schema versions "
        "(added states: status-aggregator diff --config checks the rules)",
    )
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)

    stub = commands.add_parser(
        "stub",
        help="serve contract-valid answers without a real service",
        description=STUB_DESCRIPTION,
    )
    _participant(stub)
    add_stub_options(stub)

    pact = commands.add_parser(
        "pact", help="write the contract as a Pact V4 file, for Pact's own verifiers"
    )
    _participant(pact)
    pact.add_argument(
        "--out", type=Path, default=Path("pacts"), help="the folder (default: %(default)s)"
    )

    schemas = commands.add_parser("schemas", help="export the JSON Schemas of the contract models")
    schemas.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where to write them")
    schemas.add_argument(
        "--check", action="store_true", help="only report outdated files; exit 1 if any"
    )
    return parser


def _contract(args: argparse.Namespace) -> Contract:
    return contract_of(args.participant, args.states, args.path)


def run_verify(args: argparse.Namespace, contract: Contract, base_url: str) -> int:
    """``verify``'s work once the contract and the provider are known; KitError if
    it was asked for wrongly."""
    if not (args.state_hook or args.stateless_only):
        raise KitError(
            "pass --state-hook URL so the kit can set up provider states "
            "(or --stateless-only to run only the cases that need none)"
        )
    if args.junit_xml is not None and not args.junit_xml.parent.is_dir():
        raise KitError(f"--junit-xml: no folder {str(args.junit_xml.parent)!r} to write into")
    verifier = Verifier(
        contract.participant,
        base_url,
        state_hook=args.state_hook,
        path=contract.path,
        states=contract.declared_states,
        timeout=args.timeout,
        stateless_only=args.stateless_only,
        budget_ms=args.budget_ms,
        max_body_bytes=args.max_body_bytes,
    )
    results = asyncio.run(verifier.run())
    print(table(contract.participant, base_url, results))
    if args.junit_xml:
        junit_xml(contract.participant, results, args.junit_xml)
    return 0 if all(result.passed for result in results) else 1


def _verify(args: argparse.Namespace) -> int:
    return run_verify(args, _contract(args), args.base_url)


def _diff(args: argparse.Namespace) -> int:
    # Structural only: whether an added state is covered is for the aggregator's
    # rules, checked by `status-aggregator diff --config` (contracts/ cannot load them).
    try:
        text, code = report(compare_files(args.old, args.new))
    except SchemaFileError as exc:
        raise KitError(str(exc)) from None
    print(text)
    return code


def run_stub(args: argparse.Namespace, contract: Contract) -> int:
    """Serve ``contract``'s stub until interrupted; KitError if it cannot."""
    try:
        options = StubOptions(
            contract.participant,
            host=args.host,
            port=args.port or 0,
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            seed=args.seed,
            states=contract.declared_states,
            path=contract.path,
        )
        stub = Stub(options)
    except ValueError as exc:
        raise KitError(str(exc)) from None
    except (OSError, OverflowError) as exc:
        raise KitError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    print(f"stub {contract.participant} {stub.base_url}{stub.path}", flush=True)
    print(f"state hook: {stub.base_url}{STATE_HOOK}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stub.serve_forever()
    return 0


def _stub(args: argparse.Namespace) -> int:
    return run_stub(args, _contract(args))


def _pact(args: argparse.Namespace) -> int:
    contract = _contract(args)
    try:
        written = write_pact(contract, args.out)
    except OSError as exc:
        raise KitError(f"cannot write into {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {written}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    if args.check:
        outdated = outdated_schemas(args.dir)
        for name in outdated:
            print(f"outdated: {args.dir / name}", file=sys.stderr)
        return 1 if outdated else 0
    for name in write_schemas(args.dir):
        print(f"wrote {args.dir / name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "verify": _verify,
        "diff": _diff,
        "stub": _stub,
        "pact": _pact,
        "schemas": _schemas,
    }
    try:
        return commands[args.command](args)
    except KitError as exc:
        print(f"{_prog()}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
