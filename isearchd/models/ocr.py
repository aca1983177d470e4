"""Reading the words in a picture: text detection, then recognition of each line found.

A ``TextModels`` finds the lines of text in a picture and reads them (``read(picture)``: each
line's text, its box in the picture's pixels and the recogniser's score). ``RapidTextModels`` is
the implementation on rapidocr 3.x: the PP-OCRv4 mobile detector and recogniser that its wheel
ships (ONNX, run by ONNX Runtime; nothing is downloaded, ever):

1. detect on a reduced copy, its longer side at most ``DETECT_LONG_SIDE``: a photo without text
   costs this one pass (~80 core-ms for a 1080p photo; ``benchmarks/bench_words.py``);
2. when that pass found text and some line is small in the copy (``SMALL_LINE``), detect again on
   a larger copy (``DETECT_LONG_SIDE_TEXT``): small print is found whole, at a cost paid only by
   pictures that hold text;
3. recognise every line in batches, each cut (straightened) from the full picture that was read,
   not from a detection copy: the recogniser sees the most pixels it can. The direction
   classifier is off: text upside down is not read (a photo's EXIF orientation is applied first).

Scripts: the packaged recogniser's dictionary (``ppocr_keys_v1.txt``, 6,623 characters) holds
Chinese, ASCII Latin letters, digits and punctuation; accented Latin letters are read as their
base letter or missed. ``RapidTextModels(language, rec_model)`` reads with another language's
recognition model instead (``isearchd.models.ocr_languages``: pulled or imported into the cache,
its dictionary embedded in the file), still with the packaged detector (docs/words.md).

Threads: ONNX Runtime runs each model on ``THREADS`` thread(s): the reader runs in worker
processes, one per core (``ocr_workers``), so more threads would fight the other workers.
Memory: the models load on first use (~0.3 s) and ``close()`` drops them; a worker reading holds
~175 MiB (Python, numpy, OpenCV, ONNX Runtime and the models; ``bench_words.py``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from isearchd.config.settings import DEFAULT_WORDS_LANGUAGE
from isearchd.errors import BadImage, ModelError
from isearchd.files.images import load_image, to_rgb
from isearchd.memory import trim_heap
from isearchd.models.ocr_languages import get_language, words_version
from isearchd.models.workers import PictureFile, Workers

log = logging.getLogger(__name__)

__all__ = [
    "CRASHED",
    "DETECT_LONG_SIDE",
    "PACKAGED_MODELS",
    "RapidTextModels",
    "TextLine",
    "TextModels",
    "TextRead",
    "TextWorkers",
    "check_installed",
    "packaged_models",
    "read_text",
]

INSTALL = "pip install rapidocr"
# The models rapidocr's wheel carries (its folder ``models/``): detector, recogniser, and the
# direction classifier it loads though it is not used here.
PACKAGED_MODELS = {
    "Det": "ch_PP-OCRv4_det_infer.onnx",
    "Rec": "ch_PP-OCRv4_rec_infer.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}
# The first detection runs on a copy whose longer side is at most this (rounded to a multiple of
# 32, as the detector needs). A 1080p photo without text: ~80 core-ms at 640, ~150 at 960 (AMD
# EPYC, KVM; bench_words.py). At 640 a 1920 px photo's text must be ~20 px high to be found (10 px
# in the copy); smaller text is found by the second pass only when some larger text led to it.
DETECT_LONG_SIDE = 640
# The second detection, for pictures whose first pass found a line under ``SMALL_LINE`` px high
# (in the first copy). A 1280x800 screenshot with 14 px UI text: at 640 its lines are found in
# pieces (16 boxes for 23 lines, 141 core-ms), at 960 whole (23, 328 core-ms), at 1280 whole too
# for 589 core-ms.
DETECT_LONG_SIDE_TEXT = 960
SMALL_LINE = 16
# Lines recognised per ONNX Runtime call. Every line of a batch is padded to the batch's widest,
# so on one thread batching costs more than it saves: the screenshot's 23 lines took 758 core-ms
# one at a time, 998 in batches of 6 (rapidocr's default), 1,188 of 8, 1,537 of 16.
REC_BATCH = 1
THREADS = 1
# Every line has its own shape: ONNX Runtime's buffers for them leave the C heap fragmented, and
# a worker grew from 176 to 321 MiB over 20 pictures (10 of them screenshots). The heap is given
# back to the system after every this many pictures with text: after each one, the worker stayed
# at 179 MiB for ~80 core-ms more a screenshot (961 against 879); after every 8th it still reached
# 285 MiB (a screenshot's recognition fragments ~15 MiB) (bench_words.py).
TRIM_EVERY = 1
# A picture without text skips that trim (it is the cheap case), but its detection passes leave
# buffers too: on a library mix (20 % text) a worker reached 466 MiB after 120 pictures, and two
# workers 917 MiB (bench_faces_library.py --analysis words). So after any picture the heap is
# also given back once the worker holds more than this (its RSS read from /proc: ~20 µs); with
# it, the same 120 pictures left the worker at 236 MiB at most between pictures.
TRIM_ABOVE_MIB = 240
# The reader's own version; the words analyser's adds the language (ocr_languages.words_version).
VERSION = 1


@dataclass(frozen=True)
class TextLine:
    """One line of text in a picture: what it says, its box (left, top, width, height, in the
    picture's pixels) and the recogniser's confidence (0-1)."""

    text: str
    box: tuple[int, int, int, int]
    score: float


class TextModels(Protocol):
    """A text detector and recogniser that belong together. Loaded on first use; ``close()``
    releases them (the next ``read`` loads them again)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int:
        """Bumped when the models or their use change what is read: photos are read again."""
        ...

    def read(self, picture: Image.Image) -> list[TextLine]:
        """The lines of text in ``picture`` (any Pillow mode), top to bottom; [] when none."""
        ...

    def close(self) -> None: ...


def packaged_models() -> dict[str, Path]:
    """The model files rapidocr's wheel carries, by task; ``ModelError`` naming what is missing
    when the installed rapidocr lacks one (it would download it: never done here)."""
    spec = find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"reading words needs rapidocr: {INSTALL} (or set [words] enabled = false)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    found = {task: folder / name for task, name in PACKAGED_MODELS.items()}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise ModelError(
            f"rapidocr's packaged models are missing ({', '.join(missing)}): they would be downloaded,"
            f" which isearchd never does; reinstall rapidocr ({INSTALL}) or set [words] enabled = false"
        )
    return found


def check_installed() -> None:
    """``ModelError`` with what to do unless rapidocr and its packaged models are here."""
    packaged_models()


def _params(models: dict[str, Path]) -> dict[str, Any]:
    """rapidocr's settings (keys of its ``config.yaml``): the packaged files by path, so nothing
    is looked up or downloaded; one thread per model; the direction classifier off."""
    params: dict[str, Any] = {
        "Global.use_cls": False,
        "Global.log_level": "error",
        "EngineConfig.onnxruntime.intra_op_num_threads": THREADS,
        "EngineConfig.onnxruntime.inter_op_num_threads": THREADS,
        "Rec.rec_batch_num": REC_BATCH,
        # a detection copy no longer than 960 px is not resized by the detector itself
        "Det.limit_type": "max",
        # the font rapidocr's result viewer draws with, which isearchd never calls: without one,
        # its recogniser downloads a font as it starts (the value is never opened)
        "Global.font_path": os.devnull,
    }
    for task, path in models.items():
        params[f"{task}.model_path"] = str(path)
    return params


def _scaled(rgb: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` reduced so its longer side is at most ``long_side`` (and its sides multiples of 32,
    as the detector needs), with the factors (x, y) from its pixels back to ``rgb``'s."""
    import cv2

    h, w = rgb.shape[:2]
    ratio = min(1.0, long_side / max(h, w))
    nh, nw = max(32, round(h * ratio / 32) * 32), max(32, round(w * ratio / 32) * 32)
    if (nh, nw) == (h, w):
        return rgb, np.ones(2, dtype=np.float32)
    back = np.array([w / nw, h / nh], dtype=np.float32)
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA), back


class RapidTextModels:
    """``TextModels`` on rapidocr's packaged PP-OCRv4 models (see the module docstring), reading
    with the recognition model ``rec_model`` of ``language`` when that is not the packaged one
    (``ocr_languages.recognizer_file(language)``: the daemon resolves it, so a worker process
    never looks in the cache). The version includes the language (``words_version``)."""

    def __init__(self, language: str = DEFAULT_WORDS_LANGUAGE, rec_model: Path | None = None) -> None:
        lang = get_language(language)
        if (rec_model is None) != lang.packaged:
            raise ValueError(
                f"language {lang.key}: a model file is needed unless it is the packaged language"
            )
        self.language = lang.key
        self.name = "rapidocr-ppocrv4-mobile" + ("" if lang.packaged else f"-{lang.key}")
        self.version = words_version(VERSION, lang.key)
        self._rec_model = rec_model
        self._lock = threading.Lock()
        self._engine: Any = None
        self._since_trim = 0

    def _loaded(self) -> Any:
        if self._engine is None:
            from rapidocr import RapidOCR

            models = packaged_models()
            if self._rec_model is not None:
                models["Rec"] = self._rec_model
            self._engine = RapidOCR(params=_params(models))
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return self._engine

    def _detect(self, engine: Any, bgr: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
        copy, back = _scaled(bgr, long_side)
        found = engine.text_det(np.ascontiguousarray(copy))
        if found.boxes is None or len(found.boxes) == 0:
            return np.zeros((0, 4, 2), dtype=np.float32), back
        return np.asarray(found.boxes, dtype=np.float32), back

    def read(self, picture: Image.Image) -> list[TextLine]:
        from rapidocr.ch_ppocr_rec.typings import TextRecInput
        from rapidocr.utils.process_img import get_rotate_crop_image

        bgr = np.ascontiguousarray(np.asarray(to_rgb(picture))[:, :, ::-1])
        with self._lock:
            engine = self._loaded()
            boxes, back = self._detect(engine, bgr, DETECT_LONG_SIDE)
            if len(boxes) == 0:
                _trim_if_above(TRIM_ABOVE_MIB)
                return []
            heights = np.linalg.norm(boxes[:, 0] - boxes[:, 3], axis=1)
            if heights.min() < SMALL_LINE and max(bgr.shape[:2]) > DETECT_LONG_SIDE * 1.25:
                boxes, back = self._detect(engine, bgr, DETECT_LONG_SIDE_TEXT)
            boxes = _top_to_bottom(boxes * back)
            crops = [(box, get_rotate_crop_image(bgr, box.copy())) for box in boxes]
            crops_kept = [(box, crop) for box, crop in crops if min(crop.shape[:2]) > 1]
            if not crops_kept:
                _trim_if_above(TRIM_ABOVE_MIB)
                return []
            read = engine.text_rec(TextRecInput(img=[c for _, c in crops_kept]))
            self._since_trim += 1
            if self._since_trim >= TRIM_EVERY:
                self._since_trim = 0
                trim_heap()
        lines = []
        for (box, _), text, score in zip(crops_kept, read.txts or (), read.scores, strict=False):
            if text.strip():
                lines.append(TextLine(text.strip(), _box(box, picture.size), float(score)))
        return lines

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine = None
                trim_heap()


def _trim_if_above(mib: int) -> None:
    """Give the heap back to the system when this process holds more than ``mib`` MiB."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return  # not Linux: glibc's trim is not there either
    if resident > mib << 20:
        trim_heap()


def _top_to_bottom(boxes: np.ndarray) -> np.ndarray:
    """Boxes in reading order: by line (tops within half a line height), then left to right."""
    if len(boxes) < 2:
        return boxes
    tops = boxes[:, :, 1].min(axis=1)
    height = max(1.0, float(np.median(boxes[:, :, 1].max(axis=1) - tops)))
    order = sorted(range(len(boxes)), key=lambda i: (round(tops[i] / (height / 2)), boxes[i, :, 0].min()))
    return boxes[order]


def _box(points: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The upright box around four corner points, within a picture of ``size``."""
    left, top = max(0, int(points[:, 0].min())), max(0, int(points[:, 1].min()))
    right = min(size[0], int(np.ceil(points[:, 0].max())))
    bottom = min(size[1], int(np.ceil(points[:, 1].max())))
    return left, top, max(0, right - left), max(0, bottom - top)


def joined(lines: Sequence[TextLine]) -> str:
    """A picture's text: its lines, one per line of the string."""
    return "\n".join(line.text for line in lines)


# -- reading in worker processes -------------------------------------------------------------------

CRASHED = "the text models crashed on this picture (the worker process died)"
# What a picture's decoding or the models may raise for that picture alone.
PICTURE_ERRORS = (BadImage, OSError, ValueError, RuntimeError, MemoryError)


@dataclass(frozen=True)
class TextRead:
    """The lines of text of one picture, in the coordinates of the picture that was read (``size``)."""

    size: tuple[int, int]
    lines: list[TextLine]


def read_text(models: TextModels, picture: Image.Image | PictureFile) -> TextRead | str:
    """The lines of ``picture`` (decoding it first if it is a file), or why it could not be read."""
    try:
        if isinstance(picture, PictureFile):
            picture = load_image(picture.path, min_side=picture.min_side, name=picture.path)
        return TextRead(picture.size, models.read(picture))
    except BadImage as e:
        return e.reason
    except PICTURE_ERRORS as e:
        return f"the text models could not read it: {type(e).__name__}: {e}".splitlines()[0]


class TextWorkers:
    """Reads the text of pictures in ``workers`` processes, each with the models ``make_models()``
    returns (``isearchd.models.workers``: on every core, below the daemon's priority; a crash costs
    only its picture). ``make_models()`` is also called here, once, for the version (no loading)."""

    def __init__(
        self, make_models: Callable[[], TextModels], workers: int, *, background: bool = True
    ) -> None:
        self._pool: Workers[TextModels, TextRead] = Workers(
            make_models, read_text, workers, background=background, crashed=CRASHED, what="text"
        )
        self.workers = workers
        self.version = make_models().version

    def read(self, pictures: Sequence[Image.Image | PictureFile]) -> list[TextRead | str]:
        """For each picture, in order: its lines, or why it could not be read (one line)."""
        return self._pool.read(pictures)

    def hold(self, paused: bool) -> None:
        """Stop the workers while a search computes (``Workers.hold``)."""
        self._pool.hold(paused)

    def close(self) -> None:
        self._pool.close()
