"""The README's command blocks name commands and options that exist, as written.

Every line of a shell block that runs one of the project's commands is parsed by
that command's own argument parser; files and modules it names must exist.
(How the commands behave is tested where each behaviour lives; the contract
page's commands run for real in tests/contracts/test_readme_commands.py.)
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from aggregator._cli import _parser as cli_parser
from contracts.cli import _parser as contracts_parser
from demo._run import _parser as demo_parser
from participants.__main__ import add_arguments

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def shell_commands() -> list[list[str]]:
    """Each command line of the README's shell blocks (continuations joined, prompts,
    comments and leading VAR=value assignments removed)."""
    commands = []
    for block in _plain_blocks():
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.removeprefix("$ ").strip()
            if not line or line.startswith(("{", "#", "HTTP/", "Content-", "ETag", "Age")):
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue  # a transcript line, not a command
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if words:
                commands.append(words)
    return commands


def _plain_blocks() -> list[str]:
    """The fenced blocks without a language (shell, transcripts), in order."""
    blocks: list[str] = []
    fence: str | None = None  # the open block's language, "" for none
    lines: list[str] = []
    for line in README.splitlines():
        if line.startswith("```"):
            if fence is None:
                fence, lines = line[3:].strip(), []
            else:
                if fence == "":
                    blocks.append("\n".join(lines) + "\n")
                fence = None
        elif fence is not None:
            lines.append(line)
    return blocks


def participants_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="status-aggregator participants", exit_on_error=False)
    add_arguments(parser)
    return parser


def parse(words: list[str]) -> None:
    """Parse ``words`` as the command they name would; SystemExit on a wrong one."""
    program, args = words[0], words[1:]
    if program == "python" and args[:1] == ["-m"]:
        program, args = args[1], args[2:]
    if program in ("status-aggregator", "aggregator"):
        if args[:1] == ["participants"]:
            participants_parser().parse_args(args[1:])
        elif args[:1] == ["demo"]:
            demo_parser().parse_args(args[1:])
        else:
            cli_parser().parse_args(args)
    elif program == "participants":
        participants_parser().parse_args(args)
    elif program in ("contracts", "participant-contract"):
        contracts_parser().parse_args(args)
    elif program == "gunicorn":
        module, _, name = args[0].partition(":")
        assert callable(getattr(importlib.import_module(module), name))
    elif program == "python":
        assert (ROOT / args[0]).is_file(), args[0]


OURS = ("status-aggregator", "python", "gunicorn", "participant-contract")


@pytest.mark.parametrize(
    "words",
    [w for w in shell_commands() if w[0] in OURS],
    ids=lambda words: " ".join(words)[:60],
)
def test_a_readme_command_parses_as_written(words: list[str]) -> None:
    try:
        parse(words)
    except SystemExit as exc:  # argparse's way of refusing, or --help
        refused = exc.code != 0
    else:
        refused = False
    assert not refused, f"refused: {' '.join(words)}"
    for path in (word for word in words if word.startswith(("examples/", "contracts/"))):
        assert (ROOT / path).exists(), path


def test_the_readme_has_commands_to_check() -> None:
    programs = {words[0] for words in shell_commands() if words[0] in OURS}
    assert programs >= {"status-aggregator", "python", "gunicorn"}
