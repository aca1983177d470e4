"""Languages of words in pictures through the real command line and real daemons: `model pull
ocr-LANG` from a local file server, `model import ocr-LANG FILE`, `model list`, a daemon that
reads with the imported model and reads the library again after the language changes, and a
start that fails in one line when the configured language's model is missing.

No network here: the "korean" model is rapidocr's packaged recogniser under the Korean file's
name (a real recognition model that reads the English text drawn by textpics), served or
imported. Pulls that must succeed put its SHA-256 in the table in place of the published one."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
from daemons import FIXTURES, TINY_MODEL, DaemonProcess, cli, short_tmpdir, tiny_cache
from typer.testing import CliRunner

from isearchd.cli.app import app
from isearchd.models import ocr_languages
from isearchd.models.ocr import VERSION, packaged_models
from isearchd.models.ocr_languages import LANGUAGES, OCR_URL_ENV, words_version
from isearchd.models.weights import file_sha256

sys.path.insert(0, str(FIXTURES))
from servers import serving
from textpics import plain

KOREAN = LANGUAGES["korean"]


def invoke(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.stdout, result.stderr


def one_error(code: int, stderr: str, *needles: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and lines and lines[-1].startswith("Error: "), stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``ISEARCH_OCR_URL`` at a local server that serves the packaged recogniser as Korean's."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(packaged_models()["Rec"], folder / KOREAN.file_name)
    with serving(folder) as url:
        monkeypatch.setenv(OCR_URL_ENV, url)
        yield folder / KOREAN.file_name


def test_model_pull_list_and_import_of_a_language(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the published checksum refuses the stand-in file: nothing reaches the cache
    code, _, err = invoke("model", "pull", "ocr-korean")
    one_error(
        code, err, "cannot download weights for ocr-korean", "SHA-256", "isearch model import ocr-korean"
    )
    assert not ocr_languages.cache_file("korean").exists()
    code, out, _ = invoke("model", "list")
    row = next(line for line in out.splitlines() if line.startswith("  korean "))
    assert row.endswith("not cached") and "Hangul" in row
    assert next(line for line in out.splitlines() if " chinese " in line).startswith("* ")

    table = dict(LANGUAGES, korean=dataclasses.replace(KOREAN, sha256=file_sha256(mirror)))
    monkeypatch.setattr(ocr_languages, "LANGUAGES", MappingProxyType(table))
    code, out, err = invoke("model", "pull", "ocr-korean")
    assert code == 0, err
    cached = ocr_languages.cache_file("korean")
    assert cached.read_bytes() == mirror.read_bytes()
    assert f"Text recognition model for korean saved to {cached} (10.4 MB)" in out
    assert 'set [words] language = "korean"' in out and "read again in the background" in out
    assert "Downloading ocr-korean: 10.4/10.4 MB" in err
    code, out, _ = invoke("model", "list")
    assert next(line for line in out.splitlines() if line.startswith("  korean ")).endswith(
        "cached (10.4 MB)"
    )

    one_error(*invoke("model", "pull", "ocr-klingon")[::2], "unknown language 'ocr-klingon'", "korean")
    one_error(*invoke("model", "pull", "ocr-chinese")[::2], "packaged with rapidocr")
    detector = packaged_models()["Det"]
    one_error(*invoke("model", "import", "ocr-latin", str(detector))[::2], "no text recognition model")
    code, out, err = invoke("model", "import", "ocr-latin", str(packaged_models()["Rec"]))
    assert code == 0 and "as the text recognition model for latin" in out, err
    assert ocr_languages.is_cached("latin")


# ---------------------------------------------------------------- real daemons


def words_config(root: Path, language: str | None) -> None:
    text = f'[words]\nlanguage = "{language}"\n' if language else ""
    (root / "config.toml").write_text(text)


def read_all(run: Callable[..., subprocess.CompletedProcess[str]], db: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while f'Words of "{db}": words read in {n} of {n} photos' not in (
        status := run("service", "status").stdout
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


def found(run: Callable[..., subprocess.CompletedProcess[str]], words: str, db: str) -> list[str]:
    done = run("--words", words, "--json", "-d", db)
    assert done.returncode == 0, done.stderr
    return [Path(h["path"]).name for h in json.loads(done.stdout)["results"]]


def versions_read(home: Path, db: str) -> set[int]:
    with sqlite3.connect(home / db / "catalog.sqlite") as conn:
        return {v for (v,) in conn.execute("SELECT version FROM analyses WHERE analysis = 'words'")}


def test_a_daemon_reads_in_the_imported_language_and_reads_again_after_a_change(tmp_path: Path) -> None:
    root = short_tmpdir()
    shutil.copytree(tiny_cache(TINY_MODEL), root / "cache")  # the tiny model's export, and room for ours
    pics = tmp_path / "pics"
    pics.mkdir()
    plain(["Harbour lantern 42", "velvet meadow"], size=40).save(pics / "sign.png")
    plain(["Guest network", "copper kettle"], size=40).save(pics / "kettle.png")
    first = DaemonProcess(root, words=True, own_cache=True)
    try:
        words_config(root, None)  # the packaged language
        first.start()
        run = cli(first)
        assert run("add", str(pics), "-d", "lib").returncode == 0
        read_all(run, "lib", 2)
        assert versions_read(first.home, "lib") == {VERSION}
        assert first.stop() == 0, first.output()

        # the real command line imports the model on this "offline" machine
        imported = run("model", "import", "ocr-korean", str(packaged_models()["Rec"]))
        assert imported.returncode == 0, imported.stderr
        assert (root / "cache" / "ocr" / KOREAN.file_name).is_file()

        words_config(root, "korean")
        second = DaemonProcess(root, words=True, own_cache=True)
        second.start()
        try:
            assert run("info", str(pics / "sign.png"), "-d", "lib").returncode == 0  # opens the database
            read_all(run, "lib", 2)  # the whole library again, in the background
            assert versions_read(second.home, "lib") == {words_version(VERSION, "korean")}
            assert found(run, "lantern", "lib") == ["sign.png"]
            assert found(run, "copper kettle", "lib") == ["kettle.png"]
            log = second.output()
            assert (
                f"words in pictures are read in korean ({root / 'cache' / 'ocr' / KOREAN.file_name})" in log
            )
            assert second.stop() == 0, second.output()
        finally:
            second.kill()
    finally:
        first.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("language", "needles"),
    [
        ("korean", ('[words] language = "korean" is not in the cache', "`isearch model pull ocr-korean`")),
        ("klingon", ("unknown language 'klingon' for words in pictures",)),
    ],
)
def test_a_start_with_a_missing_language_fails_in_one_line(language: str, needles: tuple[str, ...]) -> None:
    root = short_tmpdir()
    try:
        words_config(root, language)
        d = DaemonProcess(root, words=True)
        started = time.monotonic()
        done = cli(d)("service", "start", "-m", str(TINY_MODEL))
        assert time.monotonic() - started < 60
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        line = one_error(done.returncode, done.stderr, "failed to start", *needles)
        assert len(line) < 420  # whole: the service start shows up to 400 characters of the reason
        assert not d.pid_file.exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)
