"""`isearch` searching the way people look for photos: filters, order, combined queries, `--like`,
`--details` and the JSON fields, through the real command line and a real daemon.

Most runs invoke the CLI in this process (the same entry point, routing included) against the
module's daemon, for speed; the routing of value options and `--like` without a query also run
as the real `isearch` subprocess. The photos (tests/fixtures/photos.py) carry EXIF dates and GPS
positions; one has no EXIF (its date is the file's modification time).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from daemons import REPO, DaemonProcess
from photos import LISBON, PARIS, TOKYO, photo
from typer.testing import CliRunner

from isearchd.cli.app import SEARCH_ONLY_OPTIONS, VALUE_OPTIONS, app, route_default_command
from isearchd.cli.search import parse_part

DB = "clisearch"
RESULT = re.compile(r"^ ?\d+\. (?P<path>.+)\t(?P<sim>\d+\.\d)%$")
DETAILED = re.compile(r"^ ?\d+\. (?P<path>.+)\t(?P<sim>\d+\.\d)%\t(?P<date>[^\t]+)\t(?P<place>[^\t]+)$")
QUERY = "a red square"  # every photo of the module's library matches it above 0 %
COMMANDS = frozenset({"search", "add", "db", "cmp", "service", "model", "config", "watch", "unwatch"})


def _schema_check() -> Any:
    """``check_search_json`` of tests/unit/test_launchers.py: the schema the launchers rely on."""
    spec = importlib.util.spec_from_file_location(
        "launcher_schema", REPO / "tests" / "unit" / "test_launchers.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check_search_json


@dataclass(frozen=True)
class Photos:
    root: Path
    beach: Path  # red circle, Lisbon, 2019-07-14 (+01:00)
    dog: Path  # red square, Paris, 2019-12-31
    family: Path  # blue circle in Family/, Tokyo, 2021-03-05
    old: Path  # red circle in scans/, no EXIF: its mtime, 2015-06-01
    png: Path  # red triangle PNG in scans/, no EXIF, mtime 2020-02-02


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory, daemon: DaemonProcess) -> Photos:
    root = tmp_path_factory.mktemp("cli-photos")
    ts = time.mktime
    photos = Photos(
        root=root,
        beach=photo(root / "2019" / "beach.jpg", "red", "circle", 1, taken="2019:07:14 18:30:05",
                    offset="+01:00", gps=LISBON),
        dog=photo(root / "2019" / "dog.jpg", "red", "square", 2, taken="2019:12:31 23:30:00", gps=PARIS),
        family=photo(root / "Family" / "tokyo.jpg", "blue", "circle", 3, taken="2021:03:05 09:00:00",
                     gps=TOKYO),
        old=photo(root / "scans" / "old.jpg", "red", "circle", 4, mtime=ts((2015, 6, 1, 12, 0, 0, 0, 0, -1))),
        png=photo(root / "scans" / "tri.png", "red", "triangle", 5, fmt="PNG",
                  mtime=ts((2020, 2, 2, 12, 0, 0, 0, 0, -1))),
    )  # fmt: skip
    with daemon.client(DB) as c:
        assert c.add_images([str(root)]) == 5
    return photos


@pytest.fixture
def isearch(daemon: DaemonProcess) -> Any:
    """``isearch(*argv)`` -> (exit code, stdout, stderr), against the module's daemon and database."""

    def run(*argv: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, [*argv, "-B", daemon.bind, "-d", DB])
        return result.exit_code, result.stdout, result.stderr

    return run


def run_isearch(daemon: DaemonProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real `isearch` program, as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "isearchd.cli", *argv, "-B", daemon.bind, "-d", DB],
        env=daemon.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def found(stdout: str) -> list[str]:
    return [m["path"] for m in map(RESULT.match, stdout.splitlines()) if m]


def one_error(code: int, stderr: str, *needles: str, exit_code: int = 1) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == exit_code and len(lines) == 1 and lines[0].startswith("Error: "), (code, stderr)
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


# -- parsing, without a daemon --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--place", "service", "x"], ["search", "--place", "service", "x"]),
        (["--in", "add", "--type", "png", "cat"], ["search", "--in", "add", "--type", "png", "cat"]),
        (["--plus", "db", "--minus", "watch", "cat"], ["search", "--plus", "db", "--minus", "watch", "cat"]),
        (["--after", "2019", "--before", "2020", "--sort", "oldest", "sea"],
         ["search", "--after", "2019", "--before", "2020", "--sort", "oldest", "sea"]),
        (["--like", "a.jpg"], ["search", "--like", "a.jpg"]),  # no query at all
        (["--like", "config"], ["search", "--like", "config"]),
        (["--details", "cat"], ["search", "--details", "cat"]),
        (["--place=service", "x"], ["search", "--place=service", "x"]),
        (["-d", "g", "--place", "model", "cat"], ["search", "-d", "g", "--place", "model", "cat"]),
    ],
)  # fmt: skip
def test_default_command_routing_skips_the_values_of_search_options(
    argv: list[str], expected: list[str]
) -> None:
    assert route_default_command(argv, COMMANDS) == expected


def test_every_search_option_is_known_to_the_routing() -> None:
    """An option of `search` missing from these lists would send `isearch --OPT service x` to
    `service` (a value option) or make `isearch --OPT` alone print the root help."""
    command = typer.main.get_command(app).commands["search"]  # type: ignore[attr-defined]
    shared = {"-d", "--db", "-B", "--bind", "-v", "--version", "-h", "--help"}
    for param in command.params:
        if param.param_type_name != "option":
            continue
        names = set(param.opts) - shared
        if not param.is_flag:
            assert set(param.opts) <= VALUE_OPTIONS, param.opts
        assert names <= SEARCH_ONLY_OPTIONS, param.opts


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("sunset", "sunset"),
        ("sunset:0.5", ("sunset", 0.5)),
        ("sunset:2", ("sunset", 2.0)),
        ("sunset:.5", ("sunset", 0.5)),
        ("red: a car:3", ("red: a car", 3.0)),  # the last colon
        ("a:b", "a:b"),  # not a number: all text
        ("x:1e3", "x:1e3"),
        ("x:-1", ("x", -1.0)),  # a weight the daemon refuses, rather than the text "x:-1"
        (":0.5", ":0.5"),  # nothing to weigh
        ("sunset:", "sunset:"),
    ],
)
def test_parse_part_reads_a_weight_only_from_a_numeric_suffix(arg: str, expected: object) -> None:
    assert parse_part(arg) == expected


def test_parse_part_keeps_an_existing_file_whole(tmp_path: Path) -> None:
    odd = tmp_path / "scan:2"
    odd.write_bytes(b"")
    assert parse_part(str(odd)) == str(odd)  # a file named like a weighted part
    image = tmp_path / "p.jpg"
    image.write_bytes(b"")
    assert parse_part(f"{image}:0.25") == (str(image), 0.25)


def test_like_or_query_but_not_both_nor_neither() -> None:
    for argv, needle in ((["search"], "query"), (["--like", "a.jpg", "cat"], "not both")):
        result = CliRunner().invoke(app, argv)
        one_error(result.exit_code, result.stderr, needle, exit_code=2)


# -- through a real daemon --------------------------------------------------------------------------


def test_each_filter_through_the_cli(isearch: Any, lib: Photos) -> None:
    code, out, err = isearch(QUERY)
    assert code == 0, err
    everything = found(out)
    assert set(everything) == {str(p) for p in (lib.beach, lib.dog, lib.family, lib.old, lib.png)}
    for argv, kept in (
        (["--after", "2019-07-14", "--before", "2019-12"], {lib.beach, lib.dog}),
        (["--after", "2020"], {lib.family, lib.png}),
        (["--before", "2015"], {lib.old}),
        (["--in", str(lib.root / "scans")], {lib.old, lib.png}),
        (["--in", str(lib.root / "scans"), "--in", str(lib.root / "Family")], {lib.old, lib.png, lib.family}),
        (["--place", "lisbon"], {lib.beach}),
        (["--place", "JAPAN"], {lib.family}),
        (["--type", "png"], {lib.png}),
        (["--type", "jpg, heic"], {lib.beach, lib.dog, lib.family, lib.old}),
        (["--type", "png", "--after", "2021"], set()),
    ):
        code, out, err = isearch(*argv, QUERY)
        assert code == 0, (argv, err)
        assert found(out) == [p for p in everything if Path(p) in kept], argv  # in the same order
    code, out, _ = isearch("--sort", "oldest", QUERY)
    assert found(out) == list(map(str, (lib.old, lib.beach, lib.dog, lib.png, lib.family)))
    code, out, _ = isearch("--sort", "newest", QUERY)
    assert found(out) == list(map(str, (lib.family, lib.png, lib.dog, lib.beach, lib.old)))


def test_relative_folders_are_the_callers(isearch: Any, lib: Photos, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lib.root)
    code, out, err = isearch("--in", "scans", QUERY)
    assert code == 0, err
    assert set(found(out)) == {str(lib.old), str(lib.png)}


def test_text_output_without_details_is_unchanged(isearch: Any, lib: Photos) -> None:
    code, out, _ = isearch("-n", "2", "--place", "portugal", QUERY)
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == [f"Searching {QUERY}...", "Found 1 similar images (similarity ≥ 0.0%):"]
    assert len(lines) == 3 and RESULT.match(lines[2]) and lines[2].startswith(f" 1. {lib.beach}\t")


def test_details_add_the_date_and_place_columns(isearch: Any, lib: Photos) -> None:
    code, out, err = isearch("--details", "-n", "5", QUERY)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:2] == [f"Searching {QUERY}...", "Found 5 similar images (similarity ≥ 0.0%):"]
    rows = {m["path"]: m for m in map(DETAILED.match, lines[2:]) if m}
    assert len(rows) == 5, out
    assert (rows[str(lib.beach)]["date"], rows[str(lib.beach)]["place"]) == (
        "2019-07-14",
        "Lisbon, Portugal",
    ) or (
        rows[str(lib.beach)]["date"] == "2019-07-14"
        and rows[str(lib.beach)]["place"].endswith("Lisbon, Portugal")
    )
    assert rows[str(lib.dog)]["date"] == "2019-12-31" and rows[str(lib.dog)]["place"].endswith("France")
    assert rows[str(lib.family)]["place"].endswith("Japan")
    assert (rows[str(lib.old)]["date"], rows[str(lib.old)]["place"]) == ("2015-06-01 (file time)", "-")
    assert rows[str(lib.png)]["date"] == "2020-02-02 (file time)"


def test_json_results_carry_what_each_photo_says(isearch: Any, lib: Photos) -> None:
    check_search_json = _schema_check()
    code, out, err = isearch("--json", "--sort", "newest", QUERY)
    assert code == 0, err
    doc = json.loads(out)
    check_search_json(doc)
    assert doc["sort"] == "newest" and doc["kind"] == "text" and doc["db"] == DB
    hits = {h["path"]: h for h in doc["results"]}
    beach = hits[str(lib.beach)]
    assert set(beach) == {"path", "label", "similarity", "taken", "taken_source", "width", "height", "place",
                          "type", "bytes", "id"}  # fmt: skip
    assert beach["taken"] == "2019-07-14T18:30:05+01:00" and beach["taken_source"] == "exif"
    assert "Lisbon" in beach["place"] and (beach["width"], beach["height"]) == (64, 64)
    assert beach["type"] == "jpeg" and beach["bytes"] == lib.beach.stat().st_size
    old = hits[str(lib.old)]
    assert old["taken_source"] == "mtime" and old["place"] is None
    assert hits[str(lib.png)]["type"] == "png"
    code, out, _ = isearch("--json", "--like", str(lib.family), "-n", "2")
    doc = json.loads(out)
    check_search_json(doc)
    assert (doc["query"], doc["kind"]) == (str(lib.family), "image")
    assert doc["results"][0]["path"] == str(lib.family) and doc["results"][0]["similarity"] == 100.0


def test_plus_and_minus_with_weights(isearch: Any, lib: Photos) -> None:
    def first(*argv: str) -> str:
        code, out, err = isearch(*argv)
        assert code == 0, err
        return found(out)[0]

    assert first("a circle", "--plus", "blue:3") == str(lib.family)
    assert first("a circle", "--plus", str(lib.family)) == str(lib.family)  # an image part
    assert first("a red shape", "--plus", "a triangle:4") == str(lib.png)
    code, out, _ = isearch("a circle", "--minus", "red:2")
    assert found(out)[0] == str(lib.family)
    code, _out, err = isearch("a circle", "--plus", "blue:200")
    one_error(code, err, "weight", "(0, 100]")
    code, _out, err = isearch("a circle", "--minus", "a circle")
    one_error(code, err, "cancel")


def test_like_without_a_query_in_the_real_program(daemon: DaemonProcess, lib: Photos) -> None:
    proc = run_isearch(daemon, "--like", str(lib.dog), "-n", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == [f"Searching {lib.dog}...", "Found 3 similar images (similarity ≥ 0.0%):"]
    assert RESULT.match(lines[2]) and lines[2] == f" 1. {lib.dog}\t100.0%"
    missing = run_isearch(daemon, "--like", str(lib.root / "unknown.jpg"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("Error: ") and "not an image of database" in missing.stderr


def test_a_value_option_before_the_query_still_searches(daemon: DaemonProcess, lib: Photos) -> None:
    """`service` is the value of --place, not the `service` command: no photo was taken there."""
    proc = run_isearch(daemon, "--place", "service", "a red circle")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "Searching a red circle...",
        "Found 0 similar images (similarity ≥ 0.0%):",
    ]


def test_bad_values_are_one_red_line(isearch: Any, lib: Photos) -> None:
    for argv, needles in (
        (["--after", "July 2019"], ("--after", "YYYY")),
        (["--before", "2019-02-30"], ("not a date",)),
        (["--after", "2021", "--before", "2020"], ("no date can pass",)),
        (["--sort", "random"], ("sort", "oldest")),
    ):
        code, _out, err = isearch(*argv, "a red circle")
        one_error(code, err, *needles)
    code, _out, err = isearch("--type", ",", "a red circle")
    one_error(code, err, "--type", exit_code=2)
