"""The `isearch` command line, run as a real subprocess against a real daemon.

Each command of the original README: its output format and its exit status. The daemon serves
the bundled tiny test model (tests/fixtures/tiny-clip.pt) on a temporary data home; images are
the synthetic coloured shapes of tests/fixtures/shapes.py.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from isearchd import __version__
from isearchd.cli.app import app, route_default_command
from isearchd.models.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = Path(os.environ.get("ISEARCH_TEST_MODEL") or REPO / "tests" / "fixtures" / "tiny-clip.pt")
RESULT_LINE = re.compile(r"^ ?\d+\. (?P<path>.+)\t(?P<sim>\d+\.\d)%$")
CLI_TIMEOUT_S = 120

sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from shapes import write_samples  # noqa: E402
from tinycache import tiny_cache  # noqa: E402


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "isearchd.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=REPO,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A failure: non-zero exit, exactly one `Error: ...` line on stderr, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def short_root() -> Path:
    """A short temporary folder: Unix socket paths are limited to ~107 bytes."""
    return Path(tempfile.mkdtemp(prefix="iscli-", dir="/tmp"))


@pytest.fixture
def home_root() -> Iterator[Path]:
    root = short_root()
    yield root
    _kill_leftover(make_env(root))
    shutil.rmtree(root, ignore_errors=True)


def make_env(root: Path, *, shared_cache: bool = False) -> dict[str, str]:
    """The environment of a CLI run on its own data home; its weights cache is its own (empty), or
    with ``shared_cache`` the session's, which holds the tiny model's export (``tinycache``)."""
    env = dict(os.environ)
    env.update(
        ISEARCH_HOME=str(root / "home"),
        ISEARCH_CACHE=str(tiny_cache(TINY_MODEL) if shared_cache else root / "cache"),
        ISEARCH_CONFIG=str(root / "config.toml"),
        ISEARCH_WEIGHTS_URL="http://127.0.0.1:9/none",  # never reach the network from a test
        ISEARCH_PEOPLE="0",  # the tiny model's shapes have no faces to find
        ISEARCH_WORDS="0",  # nor words to read
    )
    env.pop("ISEARCH_OPENER", None)
    return env


def result_lines(stdout: str) -> list[tuple[str, float]]:
    out = []
    for line in stdout.splitlines():
        m = RESULT_LINE.match(line)
        if m:
            out.append((m.group("path"), float(m.group("sim"))))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# parsing, help, errors without a daemon


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["red flower"], ["search", "red flower"]),
        (["./q.jpg"], ["search", "./q.jpg"]),
        (["-n", "5", "-m", "80", "./q.jpg"], ["search", "-n", "5", "-m", "80", "./q.jpg"]),
        (["-o", "q.jpg"], ["search", "-o", "q.jpg"]),
        (["-d", "g", "-B", "h:1", "sunset"], ["search", "-d", "g", "-B", "h:1", "sunset"]),
        (["-n5", "--min-similarity=70", "x"], ["search", "-n5", "--min-similarity=70", "x"]),
        (["search", "add"], ["search", "add"]),
        (["add", "dir/"], ["add", "dir/"]),
        (["-d", "g", "add", "dir/"], ["-d", "g", "add", "dir/"]),
        (["-B", "127.0.0.1:8080", "service", "start"], ["-B", "127.0.0.1:8080", "service", "start"]),
        (["db", "--info"], ["db", "--info"]),
        (["--", "-weird query"], ["search", "--", "-weird query"]),
        (["--help"], ["--help"]),
        (["-v"], ["-v"]),
        (["-n", "3"], ["search", "-n", "3"]),
    ],
)
def test_default_command_routing(argv: list[str], expected: list[str]) -> None:
    commands = frozenset({"search", "add", "db", "cmp", "service", "model", "config"})
    assert route_default_command(argv, commands) == expected


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("add", "search", "db", "cmp", "dups", "service", "model"):
        assert re.search(rf"^\s+{command}\s", result.output, re.M), result.output
    for option in ("-d, --db", "-B, --bind", "-v, --version"):
        assert option in result.output


@pytest.mark.parametrize("argv", [["-v"], ["--version"], ["search", "-v"], ["db", "--version"]])
def test_version(argv: list[str]) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0
    assert result.output.strip() == f"isearch {__version__}"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-m", "150", "red"], "min-similarity"),
        (["-n", "0", "red"], "num"),
        (["db"], "one of --info, --list, --clear"),
        (["db", "--info", "--list"], "one of"),
        (["add", "-l", "other", "x"], "label"),
        (["search"], "query"),
    ],
)
def test_usage_errors_are_one_red_line(argv: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle.lower() in lines[0].lower()


def test_every_command_fails_cleanly_without_a_service(home_root: Path, tmp_path: Path) -> None:
    env = make_env(home_root)
    image = write_samples(tmp_path / "img", 1, classes=[("red", "circle")])[0]
    for argv in (
        ["red flower"],
        ["search", str(image)],
        ["add", str(image)],
        ["db", "--info"],
        ["db", "--list"],
        ["db", "--clear", "-y"],
        ["db", "--clear"],
        ["cmp", str(image), str(image)],
        ["service", "stop"],
    ):
        proc = run_cli(env, *argv, stdin="y\n")
        assert proc.returncode == 1, (argv, proc.stdout, proc.stderr)
        assert_one_error_line(proc, "not running")
        assert proc.stdout == "", argv  # no "Searching ...", no question, before that error
    status = run_cli(env, "service", "status")
    assert status.returncode == 3
    assert status.stdout.startswith("ImgSearch service is not running")
    assert status.stderr == ""


def test_missing_files_are_reported_before_contacting_the_service(home_root: Path, tmp_path: Path) -> None:
    env = make_env(home_root)
    assert_one_error_line(run_cli(env, "add", str(tmp_path / "nope")), "nope", "no such")
    assert_one_error_line(run_cli(env, "cmp", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")), "a.jpg")


def test_service_start_refuses_unknown_model_and_fails_fast_offline(home_root: Path) -> None:
    env = make_env(home_root)  # its weights URL is a port nobody listens on: offline
    assert_one_error_line(run_cli(env, "service", "start", "-m", "ViT-99Z"), "unknown model", "ViT-45LY")
    started = time.monotonic()
    missing = run_cli(env, "service", "start", "-m", "ViT-8Y")
    assert time.monotonic() - started < 20  # `model pull` waits 25 s for data; start gives up sooner
    assert missing.returncode == 1 and missing.stdout == ""
    assert "Traceback" not in missing.stderr
    url = f"{env['ISEARCH_WEIGHTS_URL']}/{MODELS['ViT-8Y'].file_name}"
    *before, last = [line for line in missing.stderr.splitlines() if line.strip()]
    assert before[0] == f"The weights of ViT-8Y are not cached yet; downloading {url}"
    assert all("retrying" in line for line in before[1:]), before
    assert last.startswith("Error: cannot download weights for ViT-8Y"), last
    for needle in (
        url,
        str(home_root / "cache" / MODELS["ViT-8Y"].file_name),
        "model pull ViT-8Y",
        "model import",
    ):
        assert needle in last
    assert not (home_root / "home" / "isearchd.pid").exists()


def _invoke(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process (the model commands import torch: too slow per subprocess)."""
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.stdout, result.stderr


def _one_error(code: int, stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def test_unexpected_errors_are_one_line_with_the_log(
    monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    from isearchd import client

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(client.Client, "db_info", explode)
    code, _out, err = _invoke("a red circle")
    log = isolated_home / "isearch-cli.log"
    assert code == 1
    assert err.strip() == f"Error: unexpected error: RuntimeError: boom (details in {log})"
    assert "Traceback" not in err and "Traceback" in log.read_text()


def test_model_list() -> None:
    from isearchd.models.registry import MODELS

    code, out, _ = _invoke("model", "list")
    assert code == 0
    models, languages = out.split("\n\n")  # the models, then the languages of words in pictures
    assert languages.startswith("Languages of words in pictures")
    rows = [line for line in models.splitlines() if re.match(r"^[* ] \S+-\S+ ", line)]
    assert [row[2:].split()[0] for row in rows] == list(MODELS)
    default = [row for row in rows if row.startswith("*")]
    assert len(default) == 1 and default[0][2:].split()[0] == "ViT-45LY"
    assert all(row.endswith("not cached") for row in rows)
    assert "TinyCLIP-auto-ViT-45M-32-Text-18M" in default[0]
    assert " 512 " in default[0] and "62.7" in default[0] and "1.9" in default[0] and "3,685" in default[0]
    assert " 1024 " in next(row for row in rows if " RN-19L " in row)


def test_model_pull_and_import_errors(tmp_path: Path) -> None:
    _one_error(*_invoke("model", "pull", "ViT-99Z")[::2], "unknown model")
    _one_error(*_invoke("model", "import", "ViT-99Z", str(tmp_path))[::2], "unknown model")
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    _one_error(*_invoke("model", "import", "ViT-8Y", str(bogus))[::2], "bogus.pt")
    _one_error(*_invoke("model", "import", "ViT-8Y", str(tmp_path / "gone.pt"))[::2], "gone.pt")


def test_model_pull_downloads_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    served.mkdir()
    payload = bytes(range(256)) * 4096  # 1 MiB
    (served / MODELS["ViT-8Y"].file_name).write_bytes(payload)
    handler = functools.partial(_QuietHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        monkeypatch.setenv("ISEARCH_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}")
        try:
            code, out, err = _invoke("model", "pull", "ViT-8Y")
        finally:
            server.shutdown()
    assert code == 0, err
    cache = Path(os.environ["ISEARCH_CACHE"])
    assert out.strip() == f"Weights for ViT-8Y saved to {cache / MODELS['ViT-8Y'].file_name} (1.0 MB)"
    assert "Downloading ViT-8Y: 1.0/1.0 MB" in err  # plain progress lines without a terminal
    # the download is no checkpoint: the ONNX export fails, the weights stay, the daemon will retry
    assert "Preparing ViT-8Y for ONNX Runtime (fp32" in err
    assert "Warning: ViT-8Y could not be prepared for ONNX Runtime" in err
    code, out, _ = _invoke("model", "list")
    row = next(line for line in out.splitlines() if " ViT-8Y " in line)
    assert row.endswith("cached (1.0 MB)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# first run: the model's weights and its ONNX Runtime export, through the CLI and a real daemon


@pytest.fixture(scope="module")
def vit8y_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ViT-8Y checkpoint in the official format (the smallest key; ~90 MB)."""
    from isearchd.models.synthetic import write_official_checkpoint

    folder = tmp_path_factory.mktemp("served")
    return write_official_checkpoint("ViT-8Y", folder / MODELS["ViT-8Y"].file_name)


@pytest.fixture
def weights_server(vit8y_checkpoint: Path) -> Iterator[str]:
    """A local mirror (ISEARCH_WEIGHTS_URL) serving the random ViT-8Y checkpoint."""
    handler = functools.partial(_QuietHandler, directory=str(vit8y_checkpoint.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def _export_files(cache: Path) -> dict[str, int]:
    """The ONNX export cache's files (``image-fp32-v2.onnx``, ...) and their mtimes."""
    return {p.name: p.stat().st_mtime_ns for p in (cache / "onnx").glob("ViT-8Y-*/*") if p.is_file()}


def test_first_start_downloads_the_model_and_the_quick_start_works(
    home_root: Path, weights_server: str
) -> None:
    """The README's quick start on a fresh machine: `service start`, `isearch QUERY`, `add`."""
    env = make_env(home_root)
    env.update(ISEARCH_WEIGHTS_URL=weights_server, ISEARCH_MODEL="ViT-8Y", no_proxy="*", NO_PROXY="*")
    home, cache = Path(env["ISEARCH_HOME"]), Path(env["ISEARCH_CACHE"])
    try:
        started = run_cli(env, "service", "start")
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("ImgSearch service started (PID "), started.stdout
        assert "ViT-8Y are not cached yet; downloading" in started.stderr
        assert re.search(r"Downloading ViT-8Y: \d+\.\d/\d+\.\d MB", started.stderr), started.stderr
        assert "Preparing ViT-8Y for ONNX Runtime (fp32, once per weights file)... done" in started.stderr
        assert (cache / MODELS["ViT-8Y"].file_name).is_file()
        assert {"image-fp32-v2.onnx", "text-fp32-v2.onnx"} <= set(_export_files(cache))
        assert "exporting" not in (home / "isearchd.log").read_text()  # the daemon found the export

        for argv in (["red flower"], ["db", "--info"]):  # a fresh home: empty, and how to fill it
            empty = run_cli(env, *argv)
            assert empty.returncode == 0, empty.stderr
            assert empty.stdout.splitlines() == [
                'Database "default" has no images yet. Add some with `isearch add PATH...` '
                "or keep a folder in sync with `isearch watch FOLDER`."
            ]
            assert str(home) not in empty.stdout + empty.stderr
        assert json.loads(run_cli(env, "--json", "red flower").stdout)["results"] == []

        photos = write_samples(home_root / "photos", 1, classes=[("red", "circle"), ("blue", "square")])
        assert run_cli(env, "add", str(home_root / "photos")).returncode == 0
        found = run_cli(env, "-n", "1", str(photos[0]))  # random weights: only an image finds itself
        assert found.returncode == 0, found.stderr
        assert found.stdout.splitlines()[:2] == [
            f"Searching {photos[0]}...",
            "Found 1 similar images (similarity ≥ 0.0%):",
        ]
        assert result_lines(found.stdout) == [(str(photos[0]), 100.0)]
    finally:
        assert run_cli(env, "service", "stop").returncode == 0


def test_model_import_prepares_onnx_so_the_first_start_does_not_export(
    home_root: Path, vit8y_checkpoint: Path
) -> None:
    env = make_env(home_root)
    home, cache = Path(env["ISEARCH_HOME"]), Path(env["ISEARCH_CACHE"])
    imported = run_cli(env, "model", "import", "ViT-8Y", str(vit8y_checkpoint))
    assert imported.returncode == 0, imported.stderr
    assert "Preparing ViT-8Y for ONNX Runtime (fp32, once per weights file)... done" in imported.stderr
    exported = _export_files(cache)
    assert set(exported) == {"image-fp32-v2.onnx", "text-fp32-v2.onnx", "token-embedding-v2.npy"}
    try:
        started = run_cli(env, "service", "start", "-m", "ViT-8Y")
        assert started.returncode == 0, started.stderr
        assert "Preparing" not in started.stderr
        log = (home / "isearchd.log").read_text()
        assert "exporting" not in log and "loaded ViT-8Y (ONNX Runtime, fp32" in log
        assert _export_files(cache) == exported  # nothing written again
    finally:
        assert run_cli(env, "service", "stop").returncode == 0
    # int8 configured: its graphs are quantised from the fp32 export, which stays as it is
    again = run_cli(dict(env, ISEARCH_PRECISION="int8"), "model", "import", "ViT-8Y", str(vit8y_checkpoint))
    assert again.returncode == 0, again.stderr
    assert "Preparing ViT-8Y for ONNX Runtime (int8" in again.stderr
    now = _export_files(cache)
    assert {"image-int8-v2-q2.onnx", "text-int8-v2-q2.onnx"} <= set(now)
    assert {name: now[name] for name in exported} == exported
    assert _exporter(cache) == "builder"  # the default: built from the weights, no torch
    # --exporter makes the export again with the exporter named (int8 with it: never mixed)
    torch_made = run_cli(
        dict(env, ISEARCH_PRECISION="int8"),
        "model",
        "import",
        "ViT-8Y",
        str(vit8y_checkpoint),
        "--exporter",
        "torch",
    )
    assert torch_made.returncode == 0, torch_made.stderr
    assert _exporter(cache) == "torch"
    assert all(_export_files(cache)[name] > now[name] for name in now)


def _exporter(cache: Path) -> str:
    """Which exporter made ViT-8Y's cached graphs (fp32 and int8 alike)."""
    import onnx

    made = {
        entry.value
        for path in (cache / "onnx").glob("ViT-8Y-*/*.onnx")
        for entry in onnx.load(str(path)).metadata_props
        if entry.key == "isearch.exporter"
    }
    assert len(made) == 1, made
    return made.pop()


# ---------------------------------------------------------------------------------------------
# through a real daemon


@dataclass
class Service:
    root: Path
    env: dict[str, str]
    images: Path
    pid: int

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, stdin=stdin)


def _kill_leftover(env: dict[str, str]) -> None:
    pid_file = Path(env["ISEARCH_HOME"]) / "isearchd.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


@pytest.fixture(scope="module")
def svc() -> Iterator[Service]:
    assert TINY_MODEL.is_file(), f"the bundled test model is missing: {TINY_MODEL}"
    root = short_root()
    env = make_env(root, shared_cache=True)
    home = Path(env["ISEARCH_HOME"])
    home.mkdir(mode=0o700)
    # leftovers of a crashed daemon: a pid file naming a dead process, a socket nobody listens on
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "isearchd.pid").write_text(f"{dead.pid}\n")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(home / "isearch.sock"))
    stale.close()
    images = root / "images"
    write_samples(images, 2)
    proc = run_cli(env, "service", "start", "-m", str(TINY_MODEL), "-L", "debug")
    assert proc.returncode == 0, proc.stderr
    started = r"^ImgSearch service started \(PID (\d+), model (\S+), listening on (.+)\)$"
    m = re.match(started, proc.stdout.strip())
    assert m, proc.stdout
    service = Service(root=root, env=env, images=images, pid=int(m.group(1)))
    try:
        yield service
    finally:
        run_cli(env, "service", "stop")
        _kill_leftover(env)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def indexed(svc: Service) -> Service:
    proc = svc.run("add", str(svc.images))
    assert proc.returncode == 0, proc.stderr
    return svc


def test_second_start_refuses_and_leaves_the_daemon_alone(svc: Service) -> None:
    proc = svc.run("service", "start", "-m", str(TINY_MODEL))
    assert_one_error_line(proc, "already running", str(svc.pid), "service stop")
    status = svc.run("service", "status")
    assert status.returncode == 0
    assert f"* PID: {svc.pid}" in status.stdout


def test_status_output(svc: Service) -> None:
    proc = svc.run("service", "status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "ImgSearch service is running"
    assert lines[1] == f"* PID: {svc.pid}"
    assert re.fullmatch(r"\* MEM: \d+\.\d MB", lines[2]), lines[2]
    assert lines[3].startswith("* Model: custom:tiny-clip") or lines[3].startswith("* Model: "), lines[3]
    assert any(re.fullmatch(r"\* Uptime: (\d+h )?\d+m \d\ds", line) for line in lines), lines
    assert any(line.startswith("* Databases: ") for line in lines)
    assert any(line.startswith("* Queue: ") for line in lines)


def test_add_counts_and_skips_duplicates(svc: Service) -> None:
    folder = svc.root / "add-test"
    write_samples(folder, 1, classes=[("green", "star"), ("orange", "cross")])
    (folder / ".hidden.jpg").write_bytes((folder / "green_star_0.jpg").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    first = svc.run("add", "-d", "addtest", str(folder))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == (
        'Added 2 images to database "addtest"; skipped 0 already present; 0 failed'
    )
    again = svc.run("add", "-d", "addtest", str(folder), str(folder / "green_star_0.jpg"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1].startswith('Added 0 images to database "addtest"; skipped 2')


def test_add_reports_each_failed_file(svc: Service) -> None:
    folder = svc.root / "bad"
    folder.mkdir()
    good = write_samples(folder, 1, classes=[("purple", "triangle")])[0]
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    proc = svc.run("add", "-d", "badtest", str(folder))
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed: ")]
    assert sorted(line.split(":")[1].strip() for line in failed) == sorted(
        [str(folder / "broken.jpg"), str(folder / "empty.png")]
    ), proc.stderr
    assert all(len(line.split(": ", 2)) == 3 and line.split(": ", 2)[2] for line in failed)  # a reason
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == (
        'Added 1 image to database "badtest"; skipped 0 already present; 2 failed'
    )
    assert good.exists()


def test_add_without_a_terminal_prints_plain_lines(svc: Service) -> None:
    folder = svc.root / "plain"
    write_samples(folder, 1, classes=[("yellow", "circle")])
    proc = svc.run("add", "-d", "plain", str(folder))
    assert proc.returncode == 0
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr + proc.stdout
    assert re.fullmatch(r"Adding: 1/1 images \(\d+\.\d images/s, ETA 00:00\)\n", proc.stderr), proc.stderr


def test_add_in_a_terminal_shows_a_bar_with_rate_and_eta(svc: Service) -> None:
    folder = svc.root / "bar"
    write_samples(folder, 2, classes=[("red", "star"), ("blue", "cross"), ("green", "circle")])
    proc, terminal = _run_with_terminal_stderr(svc, "add", "-d", "bar", str(folder))
    assert proc.returncode == 0, terminal
    assert proc.stdout.strip() == 'Added 6 images to database "bar"; skipped 0 already present; 0 failed'
    assert "\x1b[" in terminal  # drawn for a terminal (cursor control), not as plain lines
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal)  # what the terminal shows, less styling
    assert "Adding: " not in shown and "━" in shown  # rich's bar, not the plain lines
    final = [line for line in shown.replace("\r", "\n").splitlines() if "6/6 images" in line]
    assert final, shown
    assert re.search(r"^Adding .*6/6 images  \d+\.\d images/s  ETA 00:00$", final[-1].rstrip()), final[-1]


# variables that make rich treat a terminal as something else, or resize it
_TERMINAL_OVERRIDES = frozenset(
    {"NO_COLOR", "FORCE_COLOR", "TERM", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"}
)


def _run_with_terminal_stderr(svc: Service, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the CLI with stderr on a 120-column pseudo-terminal; returns stdout and what stderr drew."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "isearchd.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={k: v for k, v in svc.env.items() if k not in _TERMINAL_OVERRIDES} | {"TERM": "xterm"},
        cwd=REPO,
        text=True,
    )
    os.close(follower)
    drawn = b""
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        elif proc.poll() is not None:
            break
    stdout, _ = proc.communicate(timeout=CLI_TIMEOUT_S)
    os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, ""), drawn.decode(
        "utf-8", "replace"
    )


def test_text_search_output(indexed: Service) -> None:
    proc = indexed.run("search", "-n", "5", "a red circle")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Searching a red circle..."
    assert lines[1] == "Found 5 similar images (similarity ≥ 0.0%):"
    assert [line[:3] for line in lines[2:]] == [" 1.", " 2.", " 3.", " 4.", " 5."]
    hits = result_lines(proc.stdout)
    assert len(hits) == 5
    sims = [s for _, s in hits]
    assert sims == sorted(sims, reverse=True)
    assert Path(hits[0][0]).name.startswith("red_circle_")
    assert all(Path(p).is_absolute() for p, _ in hits)


def test_search_is_the_default_command(indexed: Service) -> None:
    explicit = indexed.run("search", "-n", "3", "-m", "0", "a blue square")
    for argv in (["-n", "3", "-m", "0", "a blue square"], ["a", "blue", "square", "-n", "3"]):
        implicit = indexed.run(*argv)
        assert implicit.returncode == 0, implicit.stderr
        assert implicit.stdout == explicit.stdout


def test_image_search_finds_the_image_itself_first(indexed: Service) -> None:
    query = indexed.images / "blue_square_1.jpg"
    proc = indexed.run("-n", "3", str(query))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"Searching {query}..."
    hits = result_lines(proc.stdout)
    assert hits[0] == (str(query), 100.0)


def test_min_similarity_filters(indexed: Service) -> None:
    query = indexed.images / "red_circle_0.jpg"
    everything = result_lines(indexed.run("-n", "60", str(query)).stdout)
    threshold = everything[len(everything) // 2][1]
    proc = indexed.run("-n", "60", "-m", str(threshold), str(query))
    assert proc.returncode == 0
    assert f"(similarity ≥ {threshold:.1f}%):" in proc.stdout.splitlines()[1]
    kept = result_lines(proc.stdout)
    assert kept == [hit for hit in everything if hit[1] >= threshold]
    none = indexed.run("-m", "100", "a purple star")
    assert none.returncode == 0
    assert none.stdout.splitlines()[1].startswith("Found 0 similar images (similarity ≥ 100.0%)")


def test_long_text_query(indexed: Service) -> None:
    text = ("a red circle on a plain background " * 300)[:10_000]
    proc = indexed.run("-n", "2", text)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines[0]) < 200 and lines[0].startswith("Searching a red circle")  # the echo is shortened
    assert re.fullmatch(r"Found [0-2] similar images \(similarity ≥ 0\.0%\):", lines[1])


def test_json_output(indexed: Service) -> None:
    proc = indexed.run("--json", "-n", "4", "a yellow star")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["query"] == "a yellow star" and doc["kind"] == "text" and doc["db"] == "default"
    assert len(doc["results"]) == 4
    details = {"taken", "taken_source", "width", "height", "place", "type", "bytes", "id"}
    for hit in doc["results"]:
        assert set(hit) == {"path", "label", "similarity", *details}
        assert isinstance(hit["similarity"], float)
        assert hit["label"] == hit["path"]  # labels are absolute paths by default
    image = indexed.run("search", "--json", "-n", "1", str(indexed.images / "green_cross_0.jpg"))
    doc = json.loads(image.stdout)
    assert doc["kind"] == "image"
    assert doc["results"][0]["path"] == str(indexed.images / "green_cross_0.jpg")


def test_open_results_calls_the_opener(indexed: Service, tmp_path: Path) -> None:
    record = tmp_path / "opened.txt"
    opener = tmp_path / "opener.sh"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{record}"\n')
    opener.chmod(0o755)
    env = dict(indexed.env, ISEARCH_OPENER=str(opener))
    proc = run_cli(env, "-o", "-n", "3", str(indexed.images / "green_triangle_0.jpg"))
    assert proc.returncode == 0, proc.stderr
    paths = [p for p, _ in result_lines(proc.stdout)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        not record.exists() or len(record.read_text().splitlines()) < len(paths)
    ):
        time.sleep(0.05)
    assert sorted(record.read_text().splitlines()) == sorted(paths)


def test_labels_by_name(svc: Service) -> None:
    folder = svc.root / "byname"
    write_samples(folder, 1, classes=[("orange", "square")])
    proc = svc.run("add", "-l", "name", "-d", "names", str(folder))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(svc.run("--json", "-d", "names", "-n", "1", str(folder / "orange_square_0.jpg")).stdout)
    assert doc["db"] == "names"
    hit = doc["results"][0]
    assert hit["path"] == str(folder / "orange_square_0.jpg")
    assert hit["label"] != hit["path"] and "/" not in hit["label"]


def test_db_info_and_list(indexed: Service) -> None:
    proc = indexed.run("db", "--info")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == 'Database "default"'
    assert lines[1] == f"* Base: {Path(indexed.env['ISEARCH_HOME']) / 'default'}"
    assert lines[2] == "* Size: 60"
    assert re.fullmatch(r"\* Capacity: \d+", lines[3]) and int(lines[3].split()[-1]) >= 60
    listing = indexed.run("db", "--list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0] == "Available databases:"
    assert "* default" in lines[1:]
    assert all(line.startswith("* ") for line in lines[1:])


def test_db_clear_needs_confirmation(svc: Service) -> None:
    folder = svc.root / "clearme"
    write_samples(folder, 1, classes=[("red", "star"), ("blue", "cross")])
    assert svc.run("add", "-d", "clearme", str(folder)).returncode == 0
    for no_answer in ("", None):  # end of input at once; /dev/null
        refused = (
            svc.run("db", "--clear", "-d", "clearme", stdin=no_answer)
            if no_answer is not None
            else subprocess.run(
                [sys.executable, "-m", "isearchd.cli", "db", "--clear", "-d", "clearme"],
                env=svc.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_S,
            )
        )
        assert_one_error_line(refused, "no answer", "-y")
    declined = svc.run("db", "--clear", "-d", "clearme", stdin="n\n")
    assert declined.returncode == 1 and "Nothing was cleared." in declined.stdout
    assert "* Size: 2" in svc.run("db", "--info", "-d", "clearme").stdout
    piped = svc.run("db", "--clear", "-d", "clearme", stdin="y\n")  # an answer on a pipe is consent
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == [
        'Clear database "clearme" (2 images)? Every image in it is removed; this cannot be undone. [y/N]: y',
        'Database "clearme" has been cleared.',
    ]
    assert "* Size: 0" in svc.run("db", "--info", "-d", "clearme").stdout
    assert svc.run("add", "-d", "clearme", str(folder)).returncode == 0
    assert _clear_in_terminal(svc, "clearme", "n\n") != 0
    assert "* Size: 2" in svc.run("db", "--info", "-d", "clearme").stdout
    assert _clear_in_terminal(svc, "clearme", "y\n") == 0
    assert "* Size: 0" in svc.run("db", "--info", "-d", "clearme").stdout
    assert svc.run("add", "-d", "clearme", str(folder)).returncode == 0
    proc = svc.run("db", "--clear", "-y", "-d", "clearme")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'Database "clearme" has been cleared.'
    assert "* Size: 0" in svc.run("db", "--info", "-d", "clearme").stdout


def _clear_in_terminal(svc: Service, db: str, answer: str) -> int:
    """Run `db --clear` with a pseudo-terminal as stdin and answer its question."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "isearchd.cli", "db", "--clear", "-d", db],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=svc.env,
        cwd=REPO,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                seen += os.read(leader, 4096)
            except OSError:
                break
    assert b"[y/N]" in seen, seen
    os.write(leader, answer.encode())
    code = proc.wait(CLI_TIMEOUT_S)
    os.close(leader)
    return code


def test_cmp(indexed: Service) -> None:
    a = indexed.images / "red_circle_0.jpg"
    b = indexed.images / "blue_square_0.jpg"
    same = indexed.run("cmp", str(a), str(a))
    assert same.returncode == 0, same.stderr
    assert same.stdout.strip() == "Similarity between images: 100.0%"
    other = indexed.run("cmp", str(a), str(b))
    m = re.fullmatch(r"Similarity between images: (\d+\.\d)%", other.stdout.strip())
    assert m and float(m.group(1)) < 100.0
    bad = indexed.root / "garbage.jpg"
    bad.write_bytes(b"garbage")
    assert_one_error_line(indexed.run("cmp", str(a), str(bad)), "garbage.jpg")


def test_missing_database_suggests_the_closest_name(svc: Service) -> None:
    folder = svc.root / "photos-src"
    write_samples(folder, 1, classes=[("red", "square")])
    assert svc.run("add", "-d", "photos", str(folder)).returncode == 0
    for argv in (
        ["-d", "photso", "a red square"],
        ["db", "--info", "-d", "photso"],
        ["db", "--clear", "-d", "photso"],
    ):
        proc = svc.run(*argv, stdin="y\n")
        assert_one_error_line(proc, "database 'photso' does not exist", "did you mean 'photos'?")
        assert proc.stdout == ""  # no "Searching ...", no question
        assert svc.env["ISEARCH_HOME"] not in proc.stderr  # names databases, not catalog files


def test_search_in_an_empty_database_says_how_to_fill_it(svc: Service) -> None:
    folder = svc.root / "soon-empty"
    write_samples(folder, 1, classes=[("blue", "star")])
    assert svc.run("add", "-d", "soon-empty", str(folder)).returncode == 0
    assert svc.run("db", "--clear", "-y", "-d", "soon-empty").returncode == 0
    proc = svc.run("-d", "soon-empty", "a blue star")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'Database "soon-empty" has no images yet. Add some with `isearch add -d soon-empty PATH...` '
        "or keep a folder in sync with `isearch watch -d soon-empty FOLDER`."
    ]
    doc = json.loads(svc.run("--json", "-d", "soon-empty", "a blue star").stdout)
    assert doc["results"] == [] and doc["db"] == "soon-empty"


def test_bad_database_name_is_one_line(svc: Service) -> None:
    assert_one_error_line(svc.run("-d", "../etc", "a red circle"), "../etc")
    assert_one_error_line(svc.run("db", "--info", "-d", "no-such-db"), "no-such-db")


def test_stop_then_status_then_stop_again(svc: Service) -> None:
    proc = svc.run("service", "stop")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ImgSearch service stopped (PID {svc.pid})"
    home = Path(svc.env["ISEARCH_HOME"])
    assert not (home / "isearchd.pid").exists() and not (home / "isearch.sock").exists()
    status = svc.run("service", "status")
    assert status.returncode == 3
    assert status.stdout.startswith("ImgSearch service is not running")
    assert_one_error_line(svc.run("service", "stop"), "not running")
    assert_one_error_line(svc.run("a red circle"), "not running")


def test_tcp_bind(home_root: Path) -> None:
    root = home_root
    env = make_env(root, shared_cache=True)
    images = write_samples(root / "images", 1, classes=[("red", "circle"), ("blue", "square")])
    bind = f"127.0.0.1:{free_port()}"
    started = run_cli(env, "service", "start", "-m", str(TINY_MODEL), "-B", bind)
    try:
        assert started.returncode == 0, started.stderr
        assert f"listening on {bind}" in started.stdout
        status = run_cli(env, "-B", bind, "service", "status")
        assert status.returncode == 0 and f"* Bind: {bind}" in status.stdout
        added = run_cli(env, "add", "-B", bind, str(root / "images"))
        assert added.returncode == 0, added.stderr
        hits = result_lines(run_cli(env, "-B", bind, str(images[1])).stdout)
        assert hits[0][1] == 100.0 and Path(hits[0][0]).name == images[1].name
        stopped = run_cli(env, "service", "stop", "-B", bind)
        assert stopped.returncode == 0, stopped.stderr
        assert run_cli(env, "service", "status", "-B", bind).returncode == 3
    finally:
        run_cli(env, "service", "stop", "-B", bind)
        _kill_leftover(env)


def test_data_home_from_the_config_file_is_where_the_cli_looks(tmp_path: Path) -> None:
    """A config file naming `home` moves the daemon's socket there; the CLI must follow it."""
    config = tmp_path / "isearch.toml"
    config.write_text(f'home = "{tmp_path / "elsewhere"}"\n')
    env = {k: v for k, v in os.environ.items() if k != "ISEARCH_HOME"}
    env["ISEARCH_CONFIG"] = str(config)
    proc = run_cli(env, "service", "status")
    assert proc.returncode == 3, proc.stderr
    assert str(tmp_path / "elsewhere" / "isearch.sock") in proc.stdout + proc.stderr

    config.write_text("home = 5\n")  # a broken config is one clear line, not a traceback
    assert_one_error_line(run_cli(env, "service", "status"), "isearch.toml:1", "home")
