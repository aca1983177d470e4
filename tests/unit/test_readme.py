"""The README is the front door: its commands must exist and parse exactly as written.

The demo command itself (``bash contrib/demo.sh``) runs end to end in
tests/integration/test_demo.py; ``bash .ci/run`` is what CI runs. Here every ``isearch ...`` line
of the README's shell blocks is parsed by the real CLI (with ``--help`` appended, so nothing is
executed): an unknown command or option fails the test.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from isearchd.cli.app import app, route_default_command

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def shell_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```shell\n(.*?)```", README, re.S):
        for raw in block.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


ISEARCH_LINES = [line for line in shell_lines() if line.startswith("isearch ")]


def test_the_two_setup_commands_exist() -> None:
    lines = shell_lines()
    assert "bash contrib/demo.sh" in lines
    assert "bash .ci/run" in lines
    assert (REPO / "contrib" / "demo.sh").is_file()
    assert (REPO / ".ci" / "run").is_file()
    assert ".venv/bin/python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_readme_documents_every_command() -> None:
    assert len(ISEARCH_LINES) >= 15
    documented = {shlex.split(line)[1] for line in ISEARCH_LINES}
    for command in ("service", "add", "cmp", "db", "model", "config", "watch", "unwatch", "ui"):
        assert command in documented


@pytest.mark.parametrize("line", ISEARCH_LINES)
def test_readme_command_parses(line: str) -> None:
    args = shlex.split(line)[1:]
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    routed = route_default_command(args, commands)
    result = CliRunner().invoke(app, [*routed, "--help"])
    assert result.exit_code == 0, f"{line!r}: {result.output}"
    assert "Usage:" in result.output


def test_model_table_matches_the_registry() -> None:
    from isearchd.models import MODELS

    rows = re.findall(r"^\| \**([A-Za-z]+-\d+[A-Z]*)\**(?: \(default\))? \| (\S+) \| (\d+) \|", README, re.M)
    assert [key for key, _, _ in rows] == list(MODELS)
    for key, arch, dim in rows:
        assert MODELS[key].arch == arch
        assert MODELS[key].dim == int(dim)
