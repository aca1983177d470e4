"""The languages words in pictures can be read in: one text recognition model per script, as data.

The reader (``isearchd.models.ocr``) always detects lines with rapidocr's packaged PP-OCRv4
detector, which finds lines of text whatever their script; what a line *says* is read by a
recognition model trained for one script, whose dictionary (the characters it can output) is
embedded in the ONNX file (metadata ``character``), so a model is one file.

rapidocr 3.4's wheel packages one recogniser, ``ch_PP-OCRv4_rec_infer.onnx`` (the ``chinese``
language here, the default): simplified Chinese, ASCII letters, digits and punctuation (6,623
characters; an accented Latin letter is read as its base letter or missed). The others are
published by the RapidOCR project at the URLs and SHA-256 sums of rapidocr's own model list
(``rapidocr/default_models.yaml``, ``onnxruntime`` section, release v3.4.0), which ``LANGUAGES``
copies: PP-OCRv4 models where rapidocr lists one for the script (PP-OCRv3 for Latin with
accents, Cyrillic and traditional Chinese, which have no v4), PP-OCRv5 for Thai and Greek
(which have no older one). rapidocr itself would download them as it starts; isearchd never
does, so:

- ``isearch model pull ocr-LANG`` downloads one into the weights cache (``cache_file``: the
  ``ocr`` folder of ``settings.weights_cache_dir()``) with the weights downloader
  (``isearchd.models.weights.fetch_file``: resume, retry, size check, ``.part`` then rename) and
  checks its SHA-256; ``ISEARCH_OCR_URL`` replaces the download location with a base URL (a
  mirror, a local server in tests) to which the file name is appended;
- ``isearch model import ocr-LANG FILE`` copies a file fetched elsewhere, after checking that it
  is a text recognition model ONNX Runtime loads, with its dictionary (``check_recognizer``);
- ``[words] language`` names the language the daemon reads in; ``recognizer_file`` gives its
  model (the cached file; None for the packaged one) or raises what to run to get it.

The analyser's version includes the language (``words_version``), so a library read in one
language is read again, in the background, after the language changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from isearchd.config import settings
from isearchd.errors import ModelError, NotFound, WeightsMissing
from isearchd.models.weights import ProgressCallback, fetch_file, place_in_cache

log = logging.getLogger(__name__)

__all__ = [
    "LANGUAGES",
    "OCR_PREFIX",
    "OCR_URL_ENV",
    "OcrLanguage",
    "cache_file",
    "check_recognizer",
    "download_url",
    "get_language",
    "import_model",
    "is_cached",
    "pull",
    "recognizer_file",
    "words_version",
]

OCR_URL_ENV = "ISEARCH_OCR_URL"
# `isearch model pull|import` tell a language from a TinyCLIP key by this prefix: ocr-korean.
OCR_PREFIX = "ocr-"
RELEASE_URL = "https://www.modelscope.cn/models/RapidAI/RapidOCR/resolve/v3.4.0/onnx"
# A language's number times this is added to the reader's own version: numbers are never reused,
# so each (reader version, language) pair has a version of its own while the reader's stays < 1000.
VERSION_STRIDE = 1000


@dataclass(frozen=True)
class OcrLanguage:
    """One recognition model: the language key of ``[words] language``, what it reads, its file."""

    key: str
    number: int  # fixed forever: part of the words analyser's version (0: the packaged model)
    reads: str  # the scripts it reads, as `isearch model list` and docs/words.md say
    file_name: str  # rapidocr's file name
    sha256: str  # as rapidocr's model list publishes it
    folder: str = "PP-OCRv4/rec"  # below RELEASE_URL

    @property
    def packaged(self) -> bool:
        return self.number == 0

    @property
    def url(self) -> str:
        return f"{RELEASE_URL}/{self.folder}/{self.file_name}"

    @property
    def pull_name(self) -> str:
        return OCR_PREFIX + self.key


def _lang(
    number: int, key: str, reads: str, file_name: str, sha256: str, folder: str = "PP-OCRv4/rec"
) -> OcrLanguage:
    return OcrLanguage(key, number, reads, file_name, sha256, folder)


LANGUAGES: Mapping[str, OcrLanguage] = MappingProxyType(
    {
        lang.key: lang
        for lang in (
            _lang(0, settings.DEFAULT_WORDS_LANGUAGE, "Chinese (simplified), English: ASCII letters, digits",
                  "ch_PP-OCRv4_rec_infer.onnx",
                  "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
            _lang(1, "english", "English: ASCII letters, digits, punctuation",
                  "en_PP-OCRv4_rec_infer.onnx",
                  "e8770c967605983d1570cdf5352041dfb68fa0c21664f49f47b155abd3e0e318"),
            _lang(2, "latin", "Latin with accents (French, German, Spanish, Polish...)",
                  "latin_PP-OCRv3_rec_infer.onnx",
                  "e9d7a33667e8aaa702862975186adf2012e3f390cc0f9422865957125f8071cf"),
            _lang(3, "cyrillic", "Cyrillic (Russian, Ukrainian, Bulgarian, Serbian...)",
                  "cyrillic_PP-OCRv3_rec_infer.onnx",
                  "1efb65bdc460af1c0e8733d005b20952b17ca5aac10ddb56c968333791c5eaa3"),
            _lang(4, "korean", "Korean (Hangul)",
                  "korean_PP-OCRv4_rec_infer.onnx",
                  "ab151ba9065eccd98f884cf4d927db091be86137276392072edd4f9d43ad7426"),
            _lang(5, "japanese", "Japanese (kana, kanji)",
                  "japan_PP-OCRv4_rec_infer.onnx",
                  "e1075a67dba758ecfc7ebc78a10ae61c95ac8fb66a9c86fab5541e33f085cb7a"),
            _lang(6, "chinese-traditional", "Chinese (traditional)",
                  "chinese_cht_PP-OCRv3_rec_infer.onnx",
                  "779656d044ce388045e02ea9244724616194e63928606436cdfc6dc3c9528cc6"),
            _lang(7, "arabic", "Arabic script (Arabic, Persian, Urdu...)",
                  "arabic_PP-OCRv4_rec_infer.onnx",
                  "4a9011bef71687bb84288dc86ad2471bd5d37b717ddf672dd156f9e7a5601bac"),
            _lang(8, "devanagari", "Devanagari (Hindi, Marathi, Nepali...)",
                  "devanagari_PP-OCRv4_rec_infer.onnx",
                  "a62b6148303187907aa0b0d3a0125bdc62557d07966468cab9056949e36035e8"),
            _lang(9, "kannada", "Kannada",
                  "ka_PP-OCRv4_rec_infer.onnx",
                  "9c1e186ea1d13cf6c853e57b42d382c3961fdd6acc2409e0d0dc44defc9f152b"),
            _lang(10, "tamil", "Tamil",
                  "ta_PP-OCRv4_rec_infer.onnx",
                  "f78d752148873c5fa6e4294002bfd162dbba54236e406a39665ebbda766161b5"),
            _lang(11, "telugu", "Telugu",
                  "te_PP-OCRv4_rec_infer.onnx",
                  "e608c3be00c8a9ea2f5c667d90f379403e2568bd5c8183308a49ca093def8eff"),
            _lang(12, "thai", "Thai",
                  "th_PP-OCRv5_rec_mobile_infer.onnx",
                  "de541dd83161c241ff426f7ecfd602a0ba77d686cf3ab9a6c255ea82fd08006e", "PP-OCRv5/rec"),
            _lang(13, "greek", "Greek",
                  "el_PP-OCRv5_rec_mobile_infer.onnx",
                  "b4368bccd557123c702b7549fee6cd1e94b581337d1c9b65310f109131542b7f", "PP-OCRv5/rec"),
        )
    }
)  # fmt: skip


def get_language(key: str) -> OcrLanguage:
    """The language ``key`` (or ``ocr-key``; any case); ``ModelError`` listing the known ones."""
    name = key.strip().lower().removeprefix(OCR_PREFIX)
    lang = LANGUAGES.get(name)
    if lang is None:
        raise ModelError(
            f"unknown language {key!r} for words in pictures; use one of {', '.join(LANGUAGES)}"
            " (`isearch model list` says what each reads)"
        )
    return lang


def words_version(reader_version: int, key: str) -> int:
    """The words analyser's version when the reader (version ``reader_version``) reads in language
    ``key``: the reader's own for the packaged language (a library read before languages existed
    is not read again), another for each other language."""
    if not 0 < reader_version < VERSION_STRIDE:
        raise ValueError(f"a reader version must be 1-{VERSION_STRIDE - 1}")
    return reader_version + VERSION_STRIDE * get_language(key).number


def cache_file(key: str) -> Path:
    """Where the recognition model of language ``key`` is (or would be) cached."""
    return settings.weights_cache_dir() / "ocr" / get_language(key).file_name


def is_cached(key: str) -> bool:
    path = cache_file(key)
    return path.is_file() and path.stat().st_size > 0


def download_url(key: str) -> str:
    """What ``pull`` fetches: ``$ISEARCH_OCR_URL/<file>``, else the RapidOCR project's URL."""
    lang = get_language(key)
    base = os.environ.get(OCR_URL_ENV, "").strip()
    return f"{base.rstrip('/')}/{lang.file_name}" if base else lang.url


def recognizer_file(key: str) -> Path | None:
    """The recognition model the reader uses for language ``key``: None for the packaged one
    (rapidocr's own file), else the cached file. Raises ``ModelError`` for an unknown language and
    ``WeightsMissing`` (naming the commands that get it) for a model that is not cached."""
    lang = get_language(key)
    if lang.packaged:
        return None
    path = cache_file(lang.key)
    if path.is_file() and path.stat().st_size > 0:
        return path
    # short enough for `service start`, which shows the daemon's last error line (400 characters)
    raise WeightsMissing(
        f'the text recognition model of [words] language = "{lang.key}" is not in the cache ({path}): '
        f"run `isearch model pull {lang.pull_name}` (offline: `isearch model import {lang.pull_name} FILE`)"
        f', or set language = "{settings.DEFAULT_WORDS_LANGUAGE}"'
    )


def _packaged_message(lang: OcrLanguage) -> str:
    return f"the {lang.key} recognition model is packaged with rapidocr: nothing to download or import"


def pull(key: str, *, progress: ProgressCallback | None = None) -> Path:
    """Download the recognition model of language ``key`` into the cache, its SHA-256 checked
    (``WeightsMissing`` naming the URL and the commands when it cannot be fetched)."""
    lang = get_language(key)
    if lang.packaged:
        raise ModelError(_packaged_message(lang))
    target = cache_file(lang.key)
    return fetch_file(lang.pull_name, download_url(lang.key), target, sha256=lang.sha256, progress=progress)


def check_recognizer(path: Path) -> int:
    """The number of characters the text recognition model in ``path`` reads; ``ModelError`` with
    the reason when it is not one rapidocr can run (not ONNX, no embedded dictionary, an output
    that does not match the dictionary)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime raises its own exception types for a file it cannot load
        raise ModelError(f"{path}: not an ONNX model ONNX Runtime can load ({type(e).__name__})") from None
    characters = session.get_modelmeta().custom_metadata_map.get("character", "").splitlines()
    if not characters:
        raise ModelError(f"{path}: no text recognition model (it carries no character dictionary)")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3:
        raise ModelError(f"{path}: no text recognition model (its input is not one batch of colour pictures)")
    if isinstance(width, int) and width != len(characters) + 2:  # + CTC's blank and the space
        raise ModelError(
            f"{path}: a broken text recognition model ({width} outputs for {len(characters)} characters)"
        )
    return len(characters)


def import_model(key: str, file: str | Path) -> Path:
    """Check that ``file`` is a text recognition model (``check_recognizer``) and copy it into the
    cache as language ``key``'s, atomically. Its SHA-256 is not required to be the published one:
    a model retrained for the script (its dictionary embedded) is welcome; the log says when it
    differs."""
    from isearchd.models.weights import file_sha256

    lang = get_language(key)
    if lang.packaged:
        raise ModelError(_packaged_message(lang))
    source = Path(file).expanduser()
    if not source.is_file():
        raise NotFound(f"{source}: no such file")
    try:
        characters = check_recognizer(source)
    except ModelError as e:
        reason = e.message.removeprefix(f"{source}: ")
        raise ModelError(f"cannot import {source} as {lang.pull_name}: {reason}") from None
    if file_sha256(source) != lang.sha256:
        log.info("%s is not the published %s (SHA-256 differs): imported as given", source, lang.file_name)
    target = cache_file(lang.key)
    place_in_cache(source, target)
    log.info("imported %s as %s (%d characters) into %s", source, lang.pull_name, characters, target)
    return target
