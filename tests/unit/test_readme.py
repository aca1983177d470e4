"""The README is the front door and docs/ the reference: their commands must exist and parse exactly
as written, and the README's links must lead somewhere.

The demo command itself (``bash contrib/demo.sh``) runs end to end in
tests/integration/test_demo.py; ``bash .ci/run`` is what CI runs. Here every ``isearch ...`` line
of the shell blocks of the README and of every docs/ page is parsed by the real CLI (with
``--help`` appended, so nothing is executed): an unknown command or option fails the test. Links
between docs pages, and their anchors, are checked by the docs' strict Sphinx build in .ci/run.
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
DOCS = {p.name: p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").glob("*.md"))}


def shell_lines(text: str = README) -> list[str]:
    lines = []
    for block in re.findall(r"```(?:shell|bash)\n(.*?)```", text, re.S):
        for raw in block.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


README_ISEARCH_LINES = [line for line in shell_lines() if line.startswith("isearch ")]
ISEARCH_LINES = [
    line for text in (README, *DOCS.values()) for line in shell_lines(text) if line.startswith("isearch ")
]


def test_the_two_setup_commands_exist() -> None:
    lines = shell_lines()
    assert "bash contrib/demo.sh" in lines
    assert "bash .ci/run" in lines
    assert (REPO / "contrib" / "demo.sh").is_file()
    assert (REPO / ".ci" / "run").is_file()
    assert ".venv/bin/python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_readme_tours_every_command() -> None:
    assert len(README_ISEARCH_LINES) >= 15
    documented = {shlex.split(line)[1] for line in README_ISEARCH_LINES}
    for command in ("service", "add", "cmp", "db", "model", "config", "watch", "unwatch", "ui", "dups"):
        assert command in documented


def test_the_docs_hold_the_reference() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    documented = {shlex.split(line)[1] for line in ISEARCH_LINES} | {"search"}
    assert commands <= documented, f"not in README or docs/: {sorted(commands - documented)}"
    assert len(README.splitlines()) <= 300  # the front door; the reference lives in docs/


def test_readme_links_lead_somewhere() -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if target.startswith(("http://", "https://")):
            continue
        assert (REPO / target).exists(), f"README links to a missing {target}"
        if target.startswith("docs/") and target.endswith(".md") and target != "docs/index.md":
            assert re.search(rf"^\s*{re.escape(Path(target).stem)}$", DOCS["index.md"], re.M), (
                f"{target} is not in the docs' table of contents"
            )


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

    rows = re.findall(
        r"^\| \**([A-Za-z]+-\d+[A-Z]*)\**(?: \(default\))? \| (\S+) \| (\d+) \|", DOCS["models.md"], re.M
    )
    assert [key for key, _, _ in rows] == list(MODELS)
    for key, arch, dim in rows:
        assert MODELS[key].arch == arch
        assert MODELS[key].dim == int(dim)
