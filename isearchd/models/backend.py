"""``load_model``: pick the inference backend (torch or ONNX Runtime) and the precision.

- ``backend="torch"`` (the default, what ``load_model`` always did): an open_clip/compact torch
  ``Model`` on ``device``.
- ``backend="onnx"``: an ``OnnxModel`` from the export cache (``exports.py``); on a miss the
  towers are exported first, in a child process (``python -m isearchd.models.onnx_export``), so
  this process never imports torch. CPU only.
- ``backend="auto"`` (what the daemon uses): ONNX Runtime on the CPU when the export is cached or
  can be made, torch for CUDA/MPS devices or when the export fails (the reason is logged).

``ensure_export`` makes the export ahead of time: ``isearch model pull|import`` and ``service
start`` run it (with a progress line) so the daemon's first start only loads the cached graphs.

``precision="int8"`` (ONNX Runtime only) runs dynamically quantised towers: faster, slightly
lossy; its model key ends in ``+int8`` so databases never mix the two.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from isearchd.errors import ModelError
from isearchd.models.exports import PRECISIONS, ExportPaths, export_paths, weights_id
from isearchd.models.resolve import ResolvedModel, resolve

if TYPE_CHECKING:
    from isearchd.models.model import Model
    from isearchd.models.onnx_model import OnnxModel

__all__ = ["BACKENDS", "PRECISIONS", "ensure_export", "export_cached", "load_model"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
# An export of the largest model takes ~20 s on 2 cores; allow for slow machines.
EXPORT_TIMEOUT_S = 900.0


@overload
def load_model(
    key_or_path: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    backend: Literal["torch"] = "torch",
    precision: Literal["fp32"] = "fp32",
    threads: int | None = None,
) -> Model: ...


@overload
def load_model(
    key_or_path: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    backend: str = ...,
    precision: str = ...,
    threads: int | None = None,
) -> Model | OnnxModel: ...


def load_model(
    key_or_path: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    backend: str = "torch",
    precision: str = "fp32",
    threads: int | None = None,
) -> Model | OnnxModel:
    """Load a model by registry key or custom checkpoint path.

    ``weights`` is the checkpoint file for a registry key; None means the weights cache
    (``WeightsMissing`` explains how to fill it). Every problem with the file or its shapes
    raises ``ModelError`` naming the file and the reason. ``threads``: ONNX Runtime intra-op
    threads (None: one per physical core).
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    on_cpu = device == "cpu"
    if backend == "onnx" and not on_cpu:
        raise ModelError(f"the ONNX Runtime backend runs on the CPU only, not on {device}")
    resolved = resolve(key_or_path, weights)
    if backend == "torch" or (backend == "auto" and not on_cpu):
        if precision != "fp32":
            raise ModelError(
                f"precision {precision} needs the ONNX Runtime backend on the CPU (device {device})"
            )
        if backend == "auto":
            log.info("using torch for %s: ONNX Runtime runs on the CPU only (%s)", resolved.key, device)
        return _torch_model(resolved, device)
    try:
        return _onnx_model(resolved, precision, threads)
    except ModelError as exc:
        if backend == "onnx" or precision != "fp32":
            raise
        log.warning("ONNX Runtime backend unavailable for %s (%s); using torch", resolved.key, exc.message)
        return _torch_model(resolved, device)


def _torch_model(resolved: ResolvedModel, device: str) -> Model:
    from isearchd.models.loader import load_resolved

    return load_resolved(resolved, device)


def _onnx_model(resolved: ResolvedModel, precision: str, threads: int | None) -> OnnxModel:
    started = time.perf_counter()
    paths = ensure_export(resolved, precision)
    from isearchd.models.onnx_model import OnnxModel

    wid = weights_id(resolved.weights)
    model = OnnxModel(key=resolved.key, paths=paths, weights_id=wid, precision=precision, threads=threads)
    log.info(
        "loaded %s (ONNX Runtime, %s, %d threads) from %s in %.2f s",
        model.key,
        precision,
        model.threads,
        paths.directory,
        time.perf_counter() - started,
    )
    return model


def export_cached(resolved: ResolvedModel, precision: str) -> bool:
    """Whether the ONNX Runtime export of ``resolved``'s weights for ``precision`` is in the cache."""
    if not resolved.weights.is_file():
        return False
    return export_paths(resolved.key, weights_id(resolved.weights), precision).exist()


def ensure_export(resolved: ResolvedModel, precision: str) -> ExportPaths:
    """The export of ``resolved``'s weights for ``precision``: from the cache, else made now.

    The export runs in a child process (torch never enters this one). ``isearch model
    pull|import`` and ``service start`` call this before the daemon starts, so the daemon finds
    the export cached; the daemon calls it too (through ``load_model``) for whatever they missed.
    Raises ``ModelError`` with the exporter's reason.
    """
    if not resolved.weights.is_file():
        raise ModelError(f"{resolved.weights}: checkpoint file does not exist")
    paths = export_paths(resolved.key, weights_id(resolved.weights), precision)
    if not paths.exist():
        _export_in_child(resolved, precision)
        if not paths.exist():
            raise ModelError(f"the export of {resolved.key} did not produce {paths.directory}")
    return paths


def _export_in_child(resolved: ResolvedModel, precision: str) -> None:
    """Run the exporter in a child process: torch's memory never enters this one."""
    command = [
        sys.executable,
        "-m",
        "isearchd.models.onnx_export",
        resolved.source,
        str(resolved.weights),
        precision,
    ]
    log.info("exporting %s to ONNX (%s), once per weights file; this takes a minute", resolved.key, precision)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not run the ONNX exporter: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise ModelError(f"ONNX export failed: {reason}")
    log.info("exported %s in %.1f s", resolved.key, time.perf_counter() - started)
