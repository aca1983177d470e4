"""The languages of words in pictures (``isearchd.models.ocr_languages``): the table is rapidocr's
own model list, a language's model is pulled from a (local) server with its SHA-256 checked or
imported after a check that it is a recognition model, a missing one is a one-line error naming
the pull command, and the reader reads with a pulled model.

No network here: the "korean" model the tests serve is rapidocr's packaged recogniser under the
Korean file's name (a real recognition model, so the reader can run with it). Its SHA-256 is not
the published Korean one, so the tests that pull it successfully put its own sum in the table,
and one test shows that the published sum refuses it."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from isearchd.config import settings
from isearchd.errors import ModelError, NotFound, WeightsMissing
from isearchd.models import ocr_languages
from isearchd.models.ocr import VERSION, RapidTextModels, joined, packaged_models
from isearchd.models.ocr_languages import (
    LANGUAGES,
    OCR_URL_ENV,
    check_recognizer,
    get_language,
    import_model,
    recognizer_file,
    words_version,
)
from isearchd.models.weights import file_sha256

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from servers import serving
from textpics import plain, words_found

KOREAN = LANGUAGES["korean"]


def rapidocr_model_list() -> dict[str, dict[str, str]]:
    """rapidocr's own list of ONNX recognition models: file name -> its URL and SHA-256."""
    folder = packaged_models()["Rec"].parent.parent
    listed = yaml.safe_load((folder / "default_models.yaml").read_text())["onnxruntime"]
    return {name: entry for version in listed.values() for name, entry in version["rec"].items()}


def test_the_languages_are_rapidocr_s_published_models() -> None:
    published = rapidocr_model_list()
    for lang in LANGUAGES.values():
        entry = published[lang.file_name]
        assert (lang.url, lang.sha256) == (entry["model_dir"], entry["SHA256"]), lang.key
    packaged = LANGUAGES[settings.DEFAULT_WORDS_LANGUAGE]
    assert packaged.packaged and packaged.file_name == packaged_models()["Rec"].name
    assert file_sha256(packaged_models()["Rec"]) == packaged.sha256  # the wheel's file is the listed one
    numbers = [lang.number for lang in LANGUAGES.values()]
    assert len(set(numbers)) == len(numbers) and numbers.count(0) == 1


def test_the_version_includes_the_language_and_keeps_the_packaged_one() -> None:
    versions = {words_version(VERSION, key) for key in LANGUAGES}
    assert len(versions) == len(LANGUAGES)  # each language reads the library again
    assert words_version(VERSION, settings.DEFAULT_WORDS_LANGUAGE) == VERSION  # no re-read on upgrade
    assert RapidTextModels().version == VERSION
    assert RapidTextModels("korean", Path("k.onnx")).version == words_version(VERSION, "korean") != VERSION
    with pytest.raises(ValueError, match="model file"):
        RapidTextModels("korean")


def test_unknown_and_missing_languages_say_what_to_do() -> None:
    assert recognizer_file("chinese") is None  # the packaged model: rapidocr's own file
    assert get_language("OCR-Korean") is KOREAN
    with pytest.raises(ModelError, match=r"unknown language 'klingon'.*korean"):
        recognizer_file("klingon")
    with pytest.raises(WeightsMissing) as missing:
        recognizer_file("korean")
    message = missing.value.message
    assert "\n" not in message and "`isearch model pull ocr-korean`" in message
    assert "isearch model import ocr-korean FILE" in message and '[words] language = "korean"' in message
    assert str(settings.weights_cache_dir() / "ocr" / KOREAN.file_name) in message


def test_a_recognition_model_is_checked_before_it_is_imported(tmp_path: Path) -> None:
    rec, det = packaged_models()["Rec"], packaged_models()["Det"]
    assert check_recognizer(rec) == 6623
    with pytest.raises(ModelError, match="carries no character dictionary"):
        check_recognizer(det)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"no model at all")
    with pytest.raises(ModelError, match=r"garbage\.onnx: not an ONNX model"):
        check_recognizer(garbage)
    refused = re.escape(f"cannot import {det} as ocr-korean: no text recognition model")
    with pytest.raises(ModelError, match=refused):
        import_model("korean", det)
    with pytest.raises(NotFound):
        import_model("korean", tmp_path / "gone.onnx")
    with pytest.raises(ModelError, match="packaged with rapidocr"):
        import_model("chinese", rec)
    assert not ocr_languages.is_cached("korean")
    path = import_model("ocr-korean", rec)
    assert path == ocr_languages.cache_file("korean") and path.read_bytes() == rec.read_bytes()
    assert recognizer_file("korean") == path
    assert not list(path.parent.glob("*.tmp"))


# ---------------------------------------------------------------- pulling from a local server


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local mirror (``ISEARCH_OCR_URL``) serving the packaged recogniser as the Korean model."""
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copy(packaged_models()["Rec"], folder / KOREAN.file_name)
    with serving(folder) as url:
        monkeypatch.setenv(OCR_URL_ENV, url + "/")  # a trailing slash is taken as well
        yield folder / KOREAN.file_name


def publish_as_korean(monkeypatch: pytest.MonkeyPatch, file: Path) -> None:
    """The table as if ``file`` were the published Korean model (its SHA-256)."""
    table = dict(LANGUAGES)
    table["korean"] = dataclasses.replace(KOREAN, sha256=file_sha256(file))
    monkeypatch.setattr(ocr_languages, "LANGUAGES", MappingProxyType(table))


def test_pull_fetches_the_model_and_the_reader_reads_with_it(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_as_korean(monkeypatch, served)
    seen: list[tuple[int, int | None]] = []
    path = ocr_languages.pull("korean", progress=lambda done, total: seen.append((done, total)))
    assert path == ocr_languages.cache_file("korean") and path.read_bytes() == served.read_bytes()
    assert seen[-1] == (served.stat().st_size, served.stat().st_size)
    assert not path.with_name(path.name + ".part").exists()
    rec_model = recognizer_file("korean")
    assert rec_model == path
    models = RapidTextModels("korean", rec_model)
    try:
        lines = ["harbour lantern 42", "velvet meadow"]
        read = joined(models.read(plain(lines, size=36)))
        assert words_found(["harbour", "lantern", "42", "velvet", "meadow"], read) == [
            "harbour", "lantern", "42", "velvet", "meadow",
        ]  # fmt: skip
        assert models._engine.text_rec.cfg["model_path"] == str(path)  # rapidocr's recogniser: this file
    finally:
        models.close()


def test_a_download_with_another_checksum_is_refused(served: Path) -> None:
    with pytest.raises(WeightsMissing) as refused:
        ocr_languages.pull("korean")
    message = refused.value.message
    assert f"its SHA-256 is {file_sha256(served)}, not the published {KOREAN.sha256}" in message
    assert "isearch model pull ocr-korean" in message and "\n" not in message
    target = ocr_languages.cache_file("korean")
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    with pytest.raises(ModelError, match="packaged with rapidocr"):
        ocr_languages.pull("chinese")
