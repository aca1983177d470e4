"""``OnnxModel``: the exported towers run by ONNX Runtime, with no torch in the process.

Same interface as ``Model`` (``key``, ``dim``, ``image_size``, ``weights_id``,
``embed_images``, ``embed_texts``), same preprocessing (``preprocess.preprocess_array``) and
the same token ids (``tokenizer.ClipTokenizer``). Measured on a 2-core x86 machine with
ViT-45LY-shaped weights: about 2x torch eager's image throughput in fp32 and 4x in int8, and a
process that starts in a fraction of a second at ~50 MB before the model is loaded, where
importing torch alone costs ~730 MB.

The int8 model's key carries a ``+int8`` suffix: int8 embeddings are close to fp32 ones but not
equal, and a database records the key it was built with, so a database indexed in int8 is only
ever searched in int8 (and vice versa) instead of silently mixing the two.

Thread safety: any number of threads may call in; each tower runs one batch at a time (ONNX
Runtime already uses every physical core for one batch). The two towers have separate locks,
so a text query is not queued behind an indexing batch. The image tower's lock is a
``PriorityLock``: indexing (``embed_images(..., background=True)``) takes it per slice of
``_BACKGROUND_RUN`` images, and an image query waiting for it goes before the next slice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from isearchd.errors import ModelError
from isearchd.files.images import to_rgb
from isearchd.memory import malloc_trim
from isearchd.models.base import EmbeddingModel, check_texts
from isearchd.models.exports import ExportPaths
from isearchd.models.preprocess import preprocess_array
from isearchd.models.priority import PriorityLock
from isearchd.models.tokenizer import ClipTokenizer, get_tokenizer

__all__ = ["INT8_SUFFIX", "OnnxModel", "default_threads"]

log = logging.getLogger(__name__)

INT8_SUFFIX = "+int8"
# Give memory back to the system after image batches of at least this size (see malloc_trim).
_TRIM_MIN_BATCH = 4
# Images per ONNX Runtime call. Activations grow with the batch while throughput does not on a
# CPU (measured, 2 cores: ViT-8Y 62-64 images/s at 8, 16 or 32; activation peak +27 MB at 8,
# +106 MB at 32), so larger batches are run in slices of this size.
_RUN_BATCH = 8
# Images per ONNX Runtime call when indexing (``background=True``): an image query waits for at
# most one such slice. fp32 at 2 (ViT-45LY, 2 cores, benchmarks/bench_search_during_add.py, one
# noisy run each: slices of 4 / 2 / 1 gave image-search p99 during an add of 558 / 253 / 234 ms and
# the add 13.2 / 14.5 / 14.1 images/s, against 2132 ms and 15.1 images/s holding the tower for a
# whole batch; the model alone is ~10 % slower at 2 than at 8, the add hardly, as decoding shares
# the cores). Every row's fp32 output is bit-identical at any batch size. int8 keeps 8: its dynamic
# quantisation scales activations over the whole slice, so another slice size would change the
# embeddings (and an int8 slice of 8 takes about as long as an fp32 slice of 3).
_BACKGROUND_RUN = {"fp32": 2, "int8": _RUN_BATCH}


def default_threads() -> int:
    """One intra-op thread per physical core (hyper-threads only add contention)."""
    import psutil

    return max(1, psutil.cpu_count(logical=False) or psutil.cpu_count() or 1)


def _run_options() -> ort.RunOptions:
    """Shrink ONNX Runtime's memory arena after every run.

    With the arena a batch's activations reuse one pool (measured, ViT-8Y, 32 images: 250 MB
    peak; without it glibc fragments and the peak reaches 800 MB), and shrinking it after the
    run hands the pool back, so the daemon returns to its idle size after indexing.
    """
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # ONNX Runtime's workers spin while waiting for work by default. In the daemon they share the
    # cores with the decode threads, which spinning starves (measured, 2 cores, ViT-45LY int8:
    # indexing 35 -> 50 images/s without spinning; model-only throughput unchanged).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for broken files
        raise ModelError(f"{path}: cannot load the ONNX export ({type(exc).__name__}: {exc})") from None


class OnnxModel(EmbeddingModel):
    """A model running on ONNX Runtime. Build it with ``isearchd.models.load_model``."""

    def __init__(
        self,
        *,
        key: str,
        paths: ExportPaths,
        weights_id: str,
        precision: str = "fp32",
        threads: int | None = None,
        tokenizer: ClipTokenizer | None = None,
    ) -> None:
        self._threads = threads or default_threads()
        self._image = _session(paths.image, self._threads)
        self._text = _session(paths.text, self._threads)
        meta = self._image.get_modelmeta().custom_metadata_map
        text_meta = self._text.get_modelmeta().custom_metadata_map
        try:
            self._dim = int(meta["isearch.dim"])
            self._image_size = int(meta["isearch.image_size"])
            self._context_length = int(text_meta["isearch.context_length"])
        except (KeyError, ValueError):
            raise ModelError(
                f"{paths.directory}: an ONNX export without ImgSearch metadata; delete the folder"
            ) from None
        self._key = key + (INT8_SUFFIX if precision == "int8" else "")
        self._precision = precision
        self._weights_id = weights_id
        self._paths = paths
        self._tokenizer = tokenizer or get_tokenizer()
        try:  # memory-mapped: only the rows that queries use become resident
            self._token_table = np.load(paths.token_table, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{paths.token_table}: unreadable token table ({exc}); delete the folder"
            ) from None
        # ONNX Runtime allocates each batch's activations with malloc; glibc keeps freed memory in
        # the process, so after an image batch the daemon would stay ~150 MB above its idle size.
        # malloc_trim(0) hands it back (measured: ~5 ms after a 32-image batch of ~500 ms).
        self._trim_memory = malloc_trim()
        self._run_options = _run_options()
        self._image_lock = PriorityLock()
        self._background_run = _BACKGROUND_RUN.get(precision, _RUN_BATCH)
        self._text_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OnnxModel(key={self._key!r}, dim={self._dim}, image_size={self._image_size})"

    @property
    def weights_id(self) -> str:
        """First 16 hex digits of the weights file's sha256."""
        return self._weights_id

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def backend(self) -> str:
        return "onnx"

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def paths(self) -> ExportPaths:
        return self._paths

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One picture (any Pillow mode) as the normalised (3, size, size) array the model sees."""
        return preprocess_array(to_rgb(image), self._image_size)

    def embed_images(self, images: Sequence[Image.Image], *, background: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per image.

        ``background=True`` (indexing): image queries waiting for the tower go first, between
        slices of the batch; the embeddings are the same either way. Each slice is preprocessed
        while it holds the tower, so a waiting query never shares the cores with that work.
        """
        images = list(images)

        def pixels(start: int, stop: int) -> np.ndarray:
            return np.stack([self.preprocess(img) for img in images[start:stop]])

        return self._run_image(len(images), pixels, background)

    def embed_pixels(self, batch: np.ndarray, *, background: bool = False) -> np.ndarray:
        """Embeddings of an already preprocessed (n, 3, size, size) float32 batch."""
        return self._run_image(len(batch), lambda start, stop: batch[start:stop], background)

    def _run_image(self, n: int, pixels: Callable[[int, int], np.ndarray], background: bool) -> np.ndarray:
        if background:
            step, hold = self._background_run, self._image_lock.background
        else:
            step, hold = _RUN_BATCH, self._image_lock.foreground
        outputs = []
        for start in range(0, n, step):
            with hold():
                chunk = np.ascontiguousarray(pixels(start, min(n, start + step)), dtype=np.float32)
                (out,) = self._image.run(None, {"pixels": chunk}, self._run_options)
            outputs.append(out)
        if self._trim_memory is not None and n >= _TRIM_MIN_BATCH:
            with hold():
                self._trim_memory(0)
        if not outputs:
            return np.zeros((0, self._dim), dtype=np.float32)
        return _normalised(np.concatenate(outputs))

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """CLIP token ids, (n, context length) int64; longer texts are truncated, empty ones refused."""
        check_texts(texts)
        return self._tokenizer(list(texts), self._context_length)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        tokens = self.tokenize(texts)
        # CLIP's text tower is causal and pools at end-of-text (the highest id, hence argmax):
        # positions after the batch's last end-of-text token change nothing, so they are cut.
        eot = tokens.argmax(axis=1)
        tokens = tokens[:, : int(eot.max()) + 1]
        embedded = np.ascontiguousarray(self._token_table[tokens], dtype=np.float32)
        with self._text_lock:
            (out,) = self._text.run(
                None, {"embedded": embedded, "eot": eot.astype(np.int64)}, self._run_options
            )
        return _normalised(out)


def _normalised(features: np.ndarray) -> np.ndarray:
    features = features.astype(np.float32, copy=False)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.ascontiguousarray(features / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)
