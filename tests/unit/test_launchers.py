"""Desktop launcher integrations (contrib/launchers/) against a fake `isearch` and fake menus.

`check_search_json` is the schema the launchers rely on; the CLI's own tests can run real
`isearch search --json` output through it.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHERS = REPO / "contrib" / "launchers"

SAMPLE: dict[str, Any] = {
    "query": "beach sunset",
    "kind": "text",
    "db": "default",
    "results": [
        {
            "path": "/pics/holiday/sunset beach.jpg",
            "label": "/pics/holiday/sunset beach.jpg",
            "similarity": 31.4,
        },
        {"path": "/pics/2023/dunes & sea.png", "label": "/pics/2023/dunes & sea.png", "similarity": 28.0},
        {"path": "/pics/cat.webp", "label": "cat.webp", "similarity": 12.5},
    ],
}


# What a result may say of its photo (each may be null): its JSON type
DETAILS: dict[str, type] = {
    "taken": str, "taken_source": str, "width": int, "height": int, "place": str, "type": str, "bytes": int,
    "at": float, "duration": float,  # a video's best moment and its length (videos only)
}  # fmt: skip


# SAMPLE with what the photos say of themselves (the third has no date: a screenshot, say)
DATED: dict[str, Any] = {
    **SAMPLE,
    "results": [
        {**SAMPLE["results"][0], "taken": "2021-08-01T19:02:11+01:00", "taken_source": "exif", "width": 4032,
         "height": 3024, "place": "Intendente, Lisbon, Portugal", "type": "jpeg", "bytes": 2841337},
        {**SAMPLE["results"][1], "taken": "2019-07-14T18:30:05", "taken_source": "mtime", "width": 800,
         "height": 600, "place": None, "type": "png", "bytes": 91234},
        {**SAMPLE["results"][2], "taken": None, "taken_source": None, "width": 640, "height": 480,
         "place": None, "type": "webp", "bytes": 20480},
    ],
}  # fmt: skip


def check_search_json(data: Any) -> None:
    """Raise AssertionError unless ``data`` follows contrib/launchers/search-result.schema.json."""
    assert isinstance(data, dict), "top level must be an object"
    assert {"query", "kind", "db", "results"} <= data.keys(), f"missing keys in {sorted(data)}"
    assert isinstance(data["query"], str)
    assert data["kind"] in ("text", "image")
    assert isinstance(data["db"], str) and data["db"]
    assert isinstance(data["results"], list)
    sort = data.get("sort", "similarity")
    assert sort in ("similarity", "oldest", "newest"), sort
    previous = float("inf")
    for result in data["results"]:
        assert isinstance(result, dict) and {"path", "label", "similarity"} <= result.keys(), result
        assert isinstance(result["path"], str) and result["path"].startswith("/"), result
        assert isinstance(result["label"], str) and result["label"], result
        sim = result["similarity"]
        assert isinstance(sim, int | float) and not isinstance(sim, bool) and -100 <= sim <= 100, result
        for key, kind in DETAILS.items():
            value = result.get(key)
            assert value is None or (isinstance(value, kind) and not isinstance(value, bool)), (key, result)
        assert result.get("taken_source") in (None, "exif", "mtime", "video"), result
        if "raw" in result:  # only on a camera's RAW+JPEG pair (the JPEG): the RAW file's path
            assert isinstance(result["raw"], str) and result["raw"].startswith("/"), result
        if sort == "similarity":
            assert sim <= previous, "results must be sorted best first"
            previous = sim
    if sort != "similarity":  # by the wall-clock time taken (its first 19 characters), undated last
        taken = [r.get("taken") for r in data["results"]]
        dated = [t[:19] for t in taken if t]
        assert taken[: len(dated)] == [t for t in taken if t], "results without a date come last"
        assert dated == sorted(dated, reverse=sort == "newest"), f"results must be sorted {sort} first"


def test_schema_check_accepts_sample_and_rejects_broken_output() -> None:
    check_search_json(SAMPLE)
    check_search_json({**SAMPLE, "results": []})
    check_search_json(DATED)
    check_search_json({**SAMPLE, "results": [{**SAMPLE["results"][0], "raw": "/card/IMG_0001.CR2"}]})
    check_search_json({**DATED, "sort": "newest"})
    check_search_json({**DATED, "sort": "oldest", "results": [DATED["results"][i] for i in (1, 0, 2)]})
    broken = [
        {k: v for k, v in SAMPLE.items() if k != "results"},
        {**SAMPLE, "kind": "audio"},
        {**SAMPLE, "results": [{"path": "/a.jpg", "similarity": 3.0}]},
        {**SAMPLE, "results": [{"path": "/a.jpg", "label": "a", "similarity": "93%"}]},
        {**SAMPLE, "results": list(reversed(SAMPLE["results"]))},
        {**SAMPLE, "results": [{**SAMPLE["results"][0], "taken": 2019}]},
        {**SAMPLE, "results": [{**SAMPLE["results"][0], "width": "64"}]},
        {**SAMPLE, "results": [{**SAMPLE["results"][0], "taken_source": "guess"}]},
        {**SAMPLE, "results": [{**SAMPLE["results"][0], "raw": None}]},
        {**SAMPLE, "sort": "random"},
        {**DATED, "sort": "oldest"},  # newest first
        {**DATED, "sort": "oldest", "results": [DATED["results"][2], *DATED["results"][:2]]},  # undated first
    ]
    for data in broken:
        with pytest.raises(AssertionError):
            check_search_json(data)


def test_schema_document_matches_the_check() -> None:
    schema = json.loads((LAUNCHERS / "search-result.schema.json").read_text())
    assert set(schema["required"]) == {"query", "kind", "db", "results"}
    items = schema["properties"]["results"]["items"]
    assert set(items["required"]) == {"path", "label", "similarity"}
    assert set(items["properties"]) == {"path", "label", "similarity", "id", "raw", *DETAILS}
    assert schema["properties"]["sort"]["enum"] == ["similarity", "oldest", "newest"]
    assert schema["properties"]["kind"]["enum"] == ["text", "image"]


# -- fakes ---------------------------------------------------------------------------------------


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """PATH with a fake `isearch` (prints SAMPLE, logs its args) and a fake opener."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "sample.json").write_text(json.dumps(SAMPLE))
    log = tmp_path / "log"
    fake(bin_dir, "isearch", f'printf "%s\\n" "isearch $*" >> "{log}"\ncat "{tmp_path / "sample.json"}"\n')
    fake(bin_dir, "xdg-open", f'printf "%s\\n" "open $1" >> "{log}"\n')
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "LOG": str(log), "BIN": str(bin_dir)}


def log_lines(env: dict[str, str]) -> list[str]:
    path = Path(env["LOG"])
    return path.read_text().splitlines() if path.exists() else []


def run_launcher(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHERS / "linux" / "isearch-launcher"), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- rofi / wofi / dmenu / zenity script --------------------------------------------------------


def test_rofi_asks_shows_thumbnails_and_opens_the_choice(env: dict[str, str], tmp_path: Path) -> None:
    rows = tmp_path / "rofi-rows"
    # asked for the query (no -show-icons): answer it; shown results: keep stdin, choose index 1
    fake(
        Path(env["BIN"]),
        "rofi",
        f'printf "%s\\n" "rofi $*" >> "{env["LOG"]}"\n'
        'case "$*" in *-show-icons*) cat > "' + str(rows) + '"; echo 1 ;; *) echo "beach sunset" ;; esac\n',
    )
    proc = run_launcher(env, ISEARCH_LAUNCHER_MENU="rofi")
    assert proc.returncode == 0, proc.stderr
    lines = log_lines(env)
    assert lines[0].startswith("rofi -dmenu -p Image search")
    assert lines[1] == "isearch search --json -n 20 beach sunset"
    assert "-format i" in lines[2]
    assert lines[-1] == "open /pics/2023/dunes & sea.png"
    shown = rows.read_text().splitlines()
    assert len(shown) == 3
    assert shown[0].endswith("\0icon\x1f/pics/holiday/sunset beach.jpg")
    assert "31.4%" in shown[0] and "sunset beach.jpg" in shown[0]


def test_dmenu_query_from_arguments_and_database(env: dict[str, str]) -> None:
    fake(Path(env["BIN"]), "dmenu", "sed -n 3p\n")  # choose the third row
    proc = run_launcher(env, "red", "car", ISEARCH_LAUNCHER_MENU="dmenu", ISEARCH_LAUNCHER_DB="cars",
                        ISEARCH_LAUNCHER_COUNT="5")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert log_lines(env) == ["isearch search --json -n 5 -d cars red car", "open /pics/cat.webp"]


def test_first_menu_on_path_is_used_and_cancel_opens_nothing(env: dict[str, str]) -> None:
    if any(shutil.which(m, path="/usr/bin:/bin") for m in ("rofi", "wofi")):
        pytest.skip("a real rofi/wofi on /usr/bin would be found first")
    fake(Path(env["BIN"]), "dmenu", "exit 1\n")  # Escape: dmenu exits 1 with no output
    proc = run_launcher(env, "beach")
    assert proc.returncode == 0
    assert log_lines(env) == ["isearch search --json -n 20 beach"]


def test_wofi_and_zenity_choices(env: dict[str, str]) -> None:
    fake(Path(env["BIN"]), "wofi", "sed -n 2p\n")
    assert run_launcher(env, "x", ISEARCH_LAUNCHER_MENU="wofi").returncode == 0
    assert log_lines(env)[-1] == "open /pics/2023/dunes & sea.png"
    fake(Path(env["BIN"]), "zenity", "echo 3\n")  # --print-column 1: the row number
    assert run_launcher(env, "x", ISEARCH_LAUNCHER_MENU="zenity").returncode == 0
    assert log_lines(env)[-1] == "open /pics/cat.webp"


def test_search_error_is_shown_in_the_menu(env: dict[str, str]) -> None:
    fake(
        Path(env["BIN"]),
        "isearch",
        'echo "Error: no ImgSearch service at ~/.isearch/isearch.sock" >&2\nexit 1\n',
    )
    fake(Path(env["BIN"]), "rofi", f'printf "%s\\n" "rofi $*" >> "{env["LOG"]}"\n')
    proc = run_launcher(env, "beach", ISEARCH_LAUNCHER_MENU="rofi")
    assert proc.returncode == 1
    assert log_lines(env) == ["rofi -e Error: no ImgSearch service at ~/.isearch/isearch.sock"]
    assert "no ImgSearch service" in proc.stderr


def test_desktop_entry(tmp_path: Path) -> None:
    entry = LAUNCHERS / "linux" / "isearch-launcher.desktop"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(entry)
    desktop = parser["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split()[0] == "isearch-launcher"
    assert desktop["Terminal"] == "false"
    validator = shutil.which("desktop-file-validate")
    if validator:
        proc = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (LAUNCHERS / "linux" / "isearch-launcher").stat().st_mode & 0o111


# -- Ulauncher ------------------------------------------------------------------------------------


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ulauncher_items_from_json_and_errors(env: dict[str, str]) -> None:
    main = load_module(LAUNCHERS / "ulauncher" / "main.py", "ulauncher_isearch_main")
    assert "ulauncher" not in sys.modules  # importable without Ulauncher
    items = main.results_to_items(SAMPLE, 2)
    first = "/pics/holiday/sunset beach.jpg"
    assert items == [
        {"name": "sunset beach.jpg", "description": "31.4%  /pics/holiday", "icon": first, "path": first},
        {"name": "dunes & sea.png", "description": "28.0%  /pics/2023", "icon": "/pics/2023/dunes & sea.png",
         "path": "/pics/2023/dunes & sea.png"},
    ]  # fmt: skip
    assert main.build_command("red car", "isearch", "cars", 4) == [
        "isearch", "search", "--json", "-n", "4", "-d", "cars", "red car",
    ]  # fmt: skip

    fake_bin = str(Path(env["BIN"]) / "isearch")
    rows = main.search_items("beach", fake_bin, "", 8)
    assert [r["path"] for r in rows] == [r["path"] for r in SAMPLE["results"]]
    assert main.search_items("  ", fake_bin, "", 8)[0]["path"] == ""
    assert main.search_items("x", str(Path(env["BIN"]) / "missing"), "", 8)[0]["name"] == "isearch not found"
    fake(Path(env["BIN"]), "failing", 'echo "Error: database cars does not exist" >&2\nexit 1\n')
    err = main.search_items("x", str(Path(env["BIN"]) / "failing"), "", 8)
    assert err == [{"name": "ImgSearch error", "description": "Error: database cars does not exist",
                    "icon": "images/icon.svg", "path": ""}]  # fmt: skip


def test_ulauncher_manifest() -> None:
    root = LAUNCHERS / "ulauncher"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["required_api_version"].startswith("^2")
    assert (root / manifest["icon"]).is_file()
    prefs = {p["id"]: p for p in manifest["preferences"]}
    assert prefs["keyword"]["type"] == "keyword"
    assert {"isearch_bin", "database", "count"} <= prefs.keys()
    versions = json.loads((root / "versions.json").read_text())
    assert versions[0]["required_api_version"] == manifest["required_api_version"]


# -- Alfred and Raycast (macOS) ------------------------------------------------------------------


def test_alfred_script_filter_output(env: dict[str, str]) -> None:
    script = LAUNCHERS / "alfred" / "isearch_filter.py"
    proc = subprocess.run(
        [sys.executable, str(script), "beach sunset"],
        env={**env, "isearch_bin": str(Path(env["BIN"]) / "isearch"), "isearch_db": "pics"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert [i["arg"] for i in items] == [r["path"] for r in SAMPLE["results"]]
    assert items[0]["icon"] == {"path": "/pics/holiday/sunset beach.jpg"}
    assert items[0]["type"] == "file" and items[0]["quicklookurl"] == items[0]["arg"]
    assert items[0]["subtitle"] == "31.4%  /pics/holiday"
    assert log_lines(env) == ["isearch search --json -n 20 -d pics beach sunset"]

    missing = subprocess.run(
        [sys.executable, str(script), "x"], env={**env, "isearch_bin": "/nonexistent/isearch"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(missing.stdout)["items"][0]["valid"] is False


def test_alfred_workflow_plist() -> None:
    info = plistlib.loads((LAUNCHERS / "alfred" / "info.plist").read_bytes())
    objects = {o["uid"]: o for o in info["objects"]}
    filt = next(o for o in objects.values() if o["type"] == "alfred.workflow.input.scriptfilter")
    assert filt["config"]["keyword"] == "img"
    assert "isearch_filter.py" in filt["config"]["script"]
    for source, links in info["connections"].items():
        assert source in objects
        for link in links:
            assert objects[link["destinationuid"]]["type"] == "alfred.workflow.action.openfile"
    assert info["variables"]["isearch_bin"] == "isearch"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_raycast_script_lists_and_opens_the_chosen_match(env: dict[str, str]) -> None:
    script = LAUNCHERS / "raycast" / "image-search.sh"
    text = script.read_text()
    for meta in ("@raycast.schemaVersion 1", "@raycast.title", "@raycast.mode", "@raycast.argument1"):
        assert meta in text
    extra = {"ISEARCH_OPENER": str(Path(env["BIN"]) / "xdg-open"), "ISEARCH_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(script), "beach sunset", "2"], env={**env, **extra}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == " 1.  31.4%  /pics/holiday/sunset beach.jpg"
    assert log_lines(env) == ["isearch search --json -n 10 beach sunset", "open /pics/2023/dunes & sea.png"]

    fake(Path(env["BIN"]), "isearch", 'echo "Error: no ImgSearch service" >&2\nexit 1\n')
    proc = subprocess.run(["bash", str(script), "x"], env={**env, **extra}, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout.strip() == "ImgSearch error: Error: no ImgSearch service"


# -- file names that are not UTF-8 (the JSON carries them as \udcXX escapes) ---------------------

ODD_PATH = "/pics/caf\udce9\nnight.jpg"  # os.fsdecode(b"/pics/caf\xe9\nnight.jpg")


@pytest.fixture
def odd_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    odd = {
        **SAMPLE,
        "results": [{"path": ODD_PATH, "label": ODD_PATH, "similarity": 40.0}, *SAMPLE["results"]],
    }
    (tmp_path / "sample.json").write_text(json.dumps(odd))  # ASCII JSON with a \udce9 escape
    return env


def test_launcher_opens_a_non_utf8_name_with_its_exact_bytes(odd_env: dict[str, str], tmp_path: Path) -> None:
    rows = tmp_path / "rofi-rows"
    fake(Path(odd_env["BIN"]), "rofi", f'cat > "{rows}"; echo 0\n')
    proc = run_launcher(odd_env, "night", ISEARCH_LAUNCHER_MENU="rofi")
    assert proc.returncode == 0, proc.stderr
    assert Path(odd_env["LOG"]).read_bytes().endswith(b"open /pics/caf\xe9\nnight.jpg\n")
    shown = rows.read_bytes().split(b"\n")
    assert shown[0].startswith(b" 1.  40.0%  caf\\udce9\\nnight.jpg")  # one row, escaped
    assert len([r for r in shown if r]) == 4


def test_raycast_opens_a_non_utf8_name_with_its_exact_bytes(odd_env: dict[str, str]) -> None:
    script = LAUNCHERS / "raycast" / "image-search.sh"
    extra = {"ISEARCH_OPENER": str(Path(odd_env["BIN"]) / "xdg-open"), "ISEARCH_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(script), "night", "1"], env={**odd_env, **extra}, capture_output=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[0] == " 1.  40.0%  /pics/caf\\udce9\\nnight.jpg"
    assert Path(odd_env["LOG"]).read_bytes().endswith(b"open /pics/caf\xe9\nnight.jpg\n")


# -- the date each photo was taken, where a launcher has room for it -----------------------------


@pytest.fixture
def dated_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sample.json").write_text(json.dumps(DATED))
    return env


def test_launchers_show_the_date_taken_when_known(dated_env: dict[str, str], tmp_path: Path) -> None:
    env, bin_dir = dated_env, Path(dated_env["BIN"])
    rows = tmp_path / "rofi-rows"
    fake(bin_dir, "rofi", f'cat > "{rows}"; echo 2\n')
    assert run_launcher(env, "beach", ISEARCH_LAUNCHER_MENU="rofi").returncode == 0
    shown = [r.split("\0")[0] for r in rows.read_text().splitlines()]
    assert shown == [
        " 1.  31.4%  2021-08-01  sunset beach.jpg  (/pics/holiday)",
        " 2.  28.0%  2019-07-14  dunes & sea.png  (/pics/2023)",
        " 3.  12.5%              cat.webp  (/pics)",  # no date: a blank column, names aligned
    ]
    assert log_lines(env)[-1] == "open /pics/cat.webp"
    fake(bin_dir, "dmenu", "sed -n 2p\n")  # dmenu prints the chosen row back: still matched
    assert run_launcher(env, "beach", ISEARCH_LAUNCHER_MENU="dmenu").returncode == 0
    assert log_lines(env)[-1] == "open /pics/2023/dunes & sea.png"
    args = tmp_path / "zenity-args"
    fake(bin_dir, "zenity", f'printf "%s\\n" "$@" > "{args}"; echo 1\n')
    assert run_launcher(env, "beach", ISEARCH_LAUNCHER_MENU="zenity").returncode == 0
    zenity = args.read_text().splitlines()
    assert "Taken" in zenity and zenity[-4:] == ["3", "12.5%", "", "/pics/cat.webp"]

    ulauncher = load_module(LAUNCHERS / "ulauncher" / "main.py", "ulauncher_isearch_dated")
    assert [i["description"] for i in ulauncher.results_to_items(DATED)] == [
        "31.4%  2021-08-01  /pics/holiday", "28.0%  2019-07-14  /pics/2023", "12.5%  /pics",
    ]  # fmt: skip
    alfred = load_module(LAUNCHERS / "alfred" / "isearch_filter.py", "alfred_isearch_dated")
    assert alfred.alfred_items(DATED)["items"][0]["subtitle"] == "31.4%  2021-08-01  /pics/holiday"

    extra = {"ISEARCH_OPENER": str(bin_dir / "xdg-open"), "ISEARCH_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(LAUNCHERS / "raycast" / "image-search.sh"), "beach", "1"],
                          env={**env, **extra}, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:3] == [
        " 1.  31.4%  2021-08-01  /pics/holiday/sunset beach.jpg",
        " 2.  28.0%  2019-07-14  /pics/2023/dunes & sea.png",
        " 3.  12.5%              /pics/cat.webp",
    ]
