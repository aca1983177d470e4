"""What both ONNX exporters do around their graphs: metadata, writing the cache, int8 (no torch).

The torch exporter (``onnx_export.py``) and the torch-free builder (``onnx_build_export.py``)
make the fp32 graphs differently; the rest is shared, so the two caches they fill cannot differ
in anything but the graphs: the metadata (``isearch.exporter`` says which of them made the
graphs), the token table, and the int8 graphs quantised from the fp32 ones by one recipe.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from isearchd.config.schema import EXPORTERS
from isearchd.errors import ISearchError
from isearchd.models.exports import (
    EXPORT_VERSION,
    PRECISIONS,
    ExportPaths,
    atomic_write,
    export_paths,
    weights_id,
)

__all__ = [
    "EXIT_UNSUPPORTED",
    "EXPORTERS",
    "QUANTIZATION",
    "Unsupported",
    "export_metadata",
    "make_int8",
    "remove_stale",
    "run_exporter",
    "save_graph",
    "save_token_table",
]

log = logging.getLogger(__name__)

# EXPORTERS (the config's ``model.exporter``): "builder" writes the graphs from the checkpoint's
# arrays (``onnx_build``, no torch); "torch" traces the torch towers (``onnx_export``, needs torch).

# How the matrix products are quantised (``INT8_RECIPE`` in the file names: change both together).
# ONNX Runtime multiplies uint8 activations by int8 weights with whatever its CPU offers: VNNI
# (vpdpbusd) and SSE4.2 sum exactly in 32 bits, but AVX2 and AVX-512 without VNNI (AMD Zen 2/3,
# Intel before Cascade Lake) use vpmaddubsw, which adds two products in a saturating int16: with
# full-range weights 255 x 127 x 2 overflows, and the tiny model's text embeddings fell to cos 0.995
# of fp32 there (0.988 per channel) while they reached 0.999 on VNNI. reduce_range keeps weights in
# [-64, 64], so a pair stays within int16 (255 x 64 x 2 = 32640) and the integer result is exact on
# every CPU; per-channel scales win back the bit it costs. Measured (cos to fp32, text / image; the
# same to 5 digits on an AVX-512 VNNI host, an emulated AVX2-only Zen 3 and an emulated SSE4.2 CPU):
# the tiny model 0.9994 / 0.9999, random ViT-8Y 0.9989 / 0.9989, ViT-45LY 0.9984 / 0.9987. uint8
# weights (exact too, and 0.9995) ran ViT-45LY's image tower 1.8x slower on VNNI (17.6 against 9.8
# ms an image); this recipe costs nothing there (9.8 ms).
QUANTIZATION: dict[str, bool] = {"per_channel": True, "reduce_range": True}

# The builder's child exits with this status when it cannot build the model's config (the parent
# then uses the torch exporter); 1 is any other failure, its reason the last line of stderr.
EXIT_UNSUPPORTED = 3
# The export version in a cache file's name: image-fp32-v2.onnx, text-int8-v2-q2.onnx, token-embedding-v2.npy
_VERSIONED = re.compile(r"-v(\d+)(?:-q\d+)?\.(?:onnx|npy)$")


def export_metadata(
    key: str, wid: str, *, dim: int, image_size: int, context_length: int, exporter: str
) -> dict[str, str]:
    """The metadata every exported graph carries (``OnnxModel`` reads the sizes from it)."""
    return {
        "isearch.key": key,
        "isearch.weights_id": wid,
        "isearch.export_version": str(EXPORT_VERSION),
        "isearch.exporter": exporter,
        "isearch.dim": str(dim),
        "isearch.image_size": str(image_size),
        "isearch.context_length": str(context_length),
    }


def save_graph(proto: Any, target: Path) -> None:
    """Write an ``onnx.ModelProto`` atomically."""
    import onnx

    atomic_write(target, lambda tmp: onnx.save(proto, str(tmp)))


def save_token_table(table: npt.NDArray[np.float32], target: Path) -> None:
    """Write the token table (float32, C order) atomically as ``.npy``."""
    array = np.ascontiguousarray(table, dtype=np.float32)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fp:
            np.save(fp, array)

    atomic_write(target, write)


def remove_stale(key: str, wid: str) -> None:
    """Delete what the new fp32 graphs of ``key``'s export make stale: its int8 graphs (never
    keep those quantised from another exporter's fp32 ones) and files of other export versions."""
    int8 = export_paths(key, wid, "int8")
    for path in (int8.image, int8.text):
        path.unlink(missing_ok=True)
    for path in int8.directory.iterdir():
        version = _VERSIONED.search(path.name)
        if version is not None and int(version.group(1)) != EXPORT_VERSION:
            path.unlink(missing_ok=True)
            log.info("removed %s (an export of version %s)", path, version.group(1))


def make_int8(key: str, wid: str, *, replace: bool = False) -> ExportPaths:
    """The int8 graphs quantised from the cached fp32 ones (made now if missing or ``replace``)."""
    fp32 = export_paths(key, wid, "fp32")
    int8 = export_paths(key, wid, "int8")
    if replace or not (int8.image.is_file() and int8.text.is_file()):
        started = time.perf_counter()
        _quantize(fp32.image, int8.image)
        _quantize(fp32.text, int8.text)
        log.info("quantised %s to int8 in %.1f s", key, time.perf_counter() - started)
        _remove_older_int8(int8)
    return int8


def _remove_older_int8(current: ExportPaths) -> None:
    """Delete int8 graphs of earlier recipes or export versions beside ``current`` (tens of MB each)."""
    keep = {current.image.name, current.text.name}
    for old in current.directory.glob("*-int8-v*.onnx"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
            log.info("removed %s (an earlier int8 recipe)", old)


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                source,
                tmp,
                op_types_to_quantize=["MatMul", "Gemm"],
                weight_type=QuantType.QInt8,
                **QUANTIZATION,
            )

    atomic_write(target, write)


Export = Callable[[str, str, str, bool], tuple[ExportPaths, str]]


def run_exporter(argv: list[str] | None, prog: str, export: Export) -> int:
    """An exporter's command line: ``KEY_OR_PATH WEIGHTS PRECISION [--replace]``; its exit status.

    ``export(model, weights, precision, replace)`` returns the paths and the weights id it used.
    """
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("model", help="registry key or custom checkpoint path")
    parser.add_argument("weights", help="the checkpoint file")
    parser.add_argument("precision", choices=PRECISIONS)
    parser.add_argument("--replace", action="store_true", help="export again over a cached export")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s [%(name)s] %(message)s")
    try:
        paths, wid = export(args.model, args.weights, args.precision, args.replace)
    except Unsupported as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_UNSUPPORTED
    except ISearchError as exc:
        sys.stderr.write(f"{exc.message}\n")
        return 1
    except Exception as exc:  # the parent reports the last line of stderr as the reason
        log.debug("export failed", exc_info=True)
        sys.stderr.write(f"export failed: {type(exc).__name__}: {exc}\n")
        return 1
    if weights_id(Path(args.weights)) != wid:
        sys.stderr.write("the weights file changed during the export\n")
        return 1
    sys.stdout.write(f"{paths.directory}\n")
    return 0


class Unsupported(Exception):
    """The builder cannot build this config (the message says why); the torch exporter may."""
