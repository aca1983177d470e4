"""The lock CI installs from (requirements/test.txt) still satisfies what pyproject.toml asks for.

``.ci/run`` installs the lock with ``pip install --require-hashes`` and ``pip check`` catches a
missing dependency after the fact; this says which one, and also catches a floor raised in
pyproject.toml above the locked version. The fix for either is ``bash .ci/lock``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "test.txt"


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes), from pip-compile's ``name==version \\`` entries."""
    text = LOCK.read_text(encoding="utf-8")
    entry = r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)"
    entries = re.findall(entry, text, re.M)
    return {canonicalize_name(name): (version, block.count("--hash=")) for name, version, block in entries}


def _required() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["test"], *extras["docs"]]]


def test_every_dependency_is_locked_with_hashes_within_its_range() -> None:
    locked = _locked()
    assert len(locked) > 50  # the parse found the entries
    for req in _required():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in {LOCK.name}: run bash .ci/lock"
        version, hashes = locked[name]
        assert hashes >= 1
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name} {version} in the lock is outside pyproject.toml's {req.specifier}: run bash .ci/lock"
        )


def test_every_locked_package_has_a_hash_and_an_exact_version() -> None:
    text = LOCK.read_text(encoding="utf-8")
    requirement_lines = [ln for ln in text.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert len(requirement_lines) == len(_locked())  # no entry without ==version and hashes


def test_ci_installs_the_lock_and_nothing_unpinned() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements/test.txt" in run
    assert "--no-deps --no-build-isolation -e ." in run
    assert "pip check" in run
    assert "-e '.[test]'" not in run
