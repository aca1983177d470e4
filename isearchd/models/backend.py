"""``load_model``: pick the inference backend (torch or ONNX Runtime) and the precision.

- ``backend="torch"`` (the default, what ``load_model`` always did): an open_clip/compact torch
  ``Model`` on ``device``.
- ``backend="onnx"``: an ``OnnxModel`` from the export cache (``exports.py``); on a miss the
  towers are exported first, in a child process, so this process never holds the checkpoint's
  tensors nor, with the torch exporter, torch. CPU only.
- ``backend="auto"`` (what the daemon uses): ONNX Runtime on the CPU when the export is cached or
  can be made, torch for CUDA/MPS devices or when the export fails (the reason is logged).

``ensure_export`` makes the export ahead of time: ``isearch model pull|import`` and ``service
start`` run it (with a progress line) so the daemon's first start only loads the cached graphs.
Exporters (``export_steps.EXPORTERS``): ``"builder"`` (the default) builds the graphs from the
checkpoint's arrays without torch (``python -m isearchd.models.onnx_build_export``); ``"torch"``
traces the torch towers (``python -m isearchd.models.onnx_export``). A config the builder cannot
build (a custom checkpoint's timm or Hugging Face tower, say) goes to torch, with the reason logged.

``precision="int8"`` (ONNX Runtime only) runs dynamically quantised towers: faster, slightly
lossy; its model key ends in ``+int8`` so databases never mix the two.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from isearchd.errors import ModelError
from isearchd.models.export_steps import EXIT_UNSUPPORTED, EXPORTERS
from isearchd.models.exports import PRECISIONS, ExportPaths, export_paths, weights_id
from isearchd.models.resolve import ResolvedModel, resolve

if TYPE_CHECKING:
    from isearchd.models.model import Model
    from isearchd.models.onnx_model import OnnxModel

__all__ = ["BACKENDS", "EXPORTERS", "PRECISIONS", "ensure_export", "export_cached", "load_model"]

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
    exporter: str = "builder",
) -> Model: ...


@overload
def load_model(
    key_or_path: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    backend: str = ...,
    precision: str = ...,
    threads: int | None = None,
    exporter: str = "builder",
) -> Model | OnnxModel: ...


def load_model(
    key_or_path: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    backend: str = "torch",
    precision: str = "fp32",
    threads: int | None = None,
    exporter: str = "builder",
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
        return _onnx_model(resolved, precision, threads, exporter)
    except ModelError as exc:
        if backend == "onnx" or precision != "fp32":
            raise
        if not torch_installed():
            raise
        log.warning("ONNX Runtime backend unavailable for %s (%s); using torch", resolved.key, exc.message)
        return _torch_model(resolved, device)


def torch_installed() -> bool:
    """Whether torch is importable (the ``torch`` extra), found without importing it."""
    return importlib.util.find_spec("torch") is not None


def needs_torch(what: str) -> ModelError:
    """The error for ``what`` (a torch-only path) in an installation without the torch extra."""
    return ModelError(
        f"{what} needs torch, which this installation leaves out; "
        "install it with `pip install 'isearchd[torch]'`"
    )


def _torch_model(resolved: ResolvedModel, device: str) -> Model:
    if not torch_installed():
        raise needs_torch(f"the torch backend (model {resolved.key} on {device})")
    from isearchd.models.loader import load_resolved

    return load_resolved(resolved, device)


def _onnx_model(resolved: ResolvedModel, precision: str, threads: int | None, exporter: str) -> OnnxModel:
    started = time.perf_counter()
    paths = ensure_export(resolved, precision, exporter)
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


def ensure_export(
    resolved: ResolvedModel, precision: str, exporter: str = "builder", *, replace: bool = False
) -> ExportPaths:
    """The export of ``resolved``'s weights for ``precision``: from the cache, else made now.

    The export runs in a child process (the checkpoint's tensors, and torch with the torch
    exporter, never enter this one). ``isearch model pull|import`` and ``service start`` call this
    before the daemon starts, so the daemon finds the export cached; the daemon calls it too
    (through ``load_model``) for whatever they missed. ``replace``: export again with
    ``exporter`` even if the cache has an export (``--exporter`` on ``model pull|import``).
    Raises ``ModelError`` with the exporter's reason.
    """
    if not resolved.weights.is_file():
        raise ModelError(f"{resolved.weights}: checkpoint file does not exist")
    paths = export_paths(resolved.key, weights_id(resolved.weights), precision)
    if replace or not paths.exist():
        if exporter == "builder" and not _export_in_child(resolved, precision, "builder", replace):
            exporter = "torch"  # the builder said why (logged); torch can build any open_clip config
        if exporter == "torch":
            if not torch_installed():
                raise needs_torch(f"the torch exporter (for {resolved.key})")
            _export_in_child(resolved, precision, "torch", replace)
        if not paths.exist():
            raise ModelError(f"the export of {resolved.key} did not produce {paths.directory}")
    return paths


# The module each exporter runs as in the child process.
_EXPORTER_MODULES = {"builder": "isearchd.models.onnx_build_export", "torch": "isearchd.models.onnx_export"}


def _export_in_child(resolved: ResolvedModel, precision: str, exporter: str, replace: bool) -> bool:
    """Run ``exporter`` in a child process; False if the builder cannot build the config."""
    command = [sys.executable, "-m", _EXPORTER_MODULES[exporter], resolved.source, str(resolved.weights)]
    command += [precision, *(["--replace"] if replace else [])]
    log.info(
        "exporting %s to ONNX (%s, %s exporter), once per weights file; this takes a minute",
        resolved.key,
        precision,
        exporter,
    )
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
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {done.returncode}"
    if done.returncode == EXIT_UNSUPPORTED and exporter == "builder":
        log.warning("%s; using the torch exporter", reason)
        return False
    if done.returncode != 0:
        raise ModelError(f"ONNX export failed: {reason}")
    log.info("exported %s in %.1f s", resolved.key, time.perf_counter() - started)
    return True
