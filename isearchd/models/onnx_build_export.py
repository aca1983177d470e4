"""The default ONNX exporter: the towers built from the checkpoint's arrays, with no torch.

``python -m isearchd.models.onnx_build_export KEY_OR_PATH WEIGHTS PRECISION [--replace]`` is what
``backend.ensure_export`` runs in a child process on a cache miss (``model pull``, ``model import``,
``service start``, the daemon's first start): read the checkpoint (``checkpoint.read_state_dict``,
no torch unpickler), build the graphs (``onnx_build``), write them into the cache with the
metadata every export carries (``isearch.exporter`` = ``builder``), run each graph once on a
blank input (a checkpoint whose tensors fit the names but not each other fails here, and its
files are removed), then quantise int8 from them with the torch exporter's recipe
(``export_steps``). ``isearch model import`` runs this on the file before it copies it into the
cache: the check of an imported file is its export. A config the builder cannot build exits with
``EXIT_UNSUPPORTED`` and the reason, and the parent uses the torch exporter instead.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from isearchd.errors import ModelError
from isearchd.models.checkpoint import read_state_dict
from isearchd.models.export_steps import (
    Unsupported,
    export_metadata,
    make_int8,
    remove_stale,
    run_exporter,
    save_graph,
    save_token_table,
)
from isearchd.models.exports import ExportPaths, export_paths, weights_id
from isearchd.models.onnx_build import build_graphs, unsupported
from isearchd.models.resolve import ResolvedModel, resolve

__all__ = ["export_built"]

log = logging.getLogger(__name__)


def export_built(resolved: ResolvedModel, precision: str = "fp32", *, replace: bool = False) -> ExportPaths:
    """Build ``resolved``'s graphs into the cache (fp32 always; int8 from it); return the paths.

    ``replace``: build again even if the cache has the graphs (made by either exporter).
    Raises ``Unsupported`` for a config the builder cannot build, ``ModelError`` for a checkpoint
    that does not fit its architecture (naming the file).
    """
    reason = unsupported(resolved.config)
    if reason is not None:
        raise Unsupported(f"{resolved.key} cannot be built without torch: {reason}")
    path = resolved.weights
    wid = weights_id(path)
    fp32 = export_paths(resolved.key, wid, "fp32")
    if replace or not fp32.exist():
        started = time.perf_counter()
        arrays, layout = read_state_dict(path)
        if layout == "auto" and resolved.registry and not resolved.auto:
            raise ModelError(
                f"{path}: not a checkpoint of {resolved.what}: it holds a pruned (auto) TinyCLIP model"
            )
        metadata = export_metadata(
            resolved.key,
            wid,
            dim=resolved.dim,
            image_size=resolved.image_size,
            context_length=resolved.context_length,
            exporter="builder",
        )
        try:
            built = build_graphs(arrays, resolved.config, metadata, pruned=resolved.auto)
        except ModelError as exc:
            raise ModelError(f"{path}: not a checkpoint of {resolved.what}: {exc.message}") from None
        del arrays
        save_graph(built.image, fp32.image)
        save_graph(built.text, fp32.text)
        save_token_table(built.token_table, fp32.token_table)
        del built
        try:
            run_once(fp32, resolved.image_size, resolved.dim)
        except ModelError as exc:
            for file in (fp32.image, fp32.text, fp32.token_table):
                file.unlink(missing_ok=True)
            raise ModelError(f"{path}: not a checkpoint of {resolved.what}: {exc.message}") from None
        remove_stale(resolved.key, wid)
        log.info("built %s into %s in %.1f s", resolved.key, fp32.directory, time.perf_counter() - started)
    if precision == "fp32":
        return fp32
    return make_int8(resolved.key, wid, replace=replace)


def run_once(paths: ExportPaths, image_size: int, dim: int) -> None:
    """Run both graphs on a blank input; ModelError unless each gives one finite ``dim`` vector.

    The builder checks names and the sizes it plans from; this catches the rest (a convolution
    whose channels do not follow from the one before, say), as the torch loader's strict load did.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    table = np.load(paths.token_table, mmap_mode="r")
    inputs = {
        paths.image: {"pixels": np.zeros((1, 3, image_size, image_size), np.float32)},
        paths.text: {"embedded": np.ascontiguousarray(table[None, :3]), "eot": np.array([2], np.int64)},
    }
    for graph, feed in inputs.items():
        try:
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            (out,) = session.run(None, feed)
        # ONNX Runtime raises its own classes (Fail, InvalidArgument, InvalidGraph, ...), all of
        # them saying which node's shapes did not fit
        except Exception as exc:
            detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise ModelError(f"tensors do not match the architecture: {detail}") from None
        if out.shape != (1, dim) or not np.isfinite(out).all():
            raise ModelError(
                f"tensors do not match the architecture: the {graph.stem} graph gives {out.shape}, "
                f"not one {dim}-d vector"
            )


def _export_file(model: str, weights: str, precision: str, replace: bool) -> tuple[ExportPaths, str]:
    resolved = resolve(model, weights)
    wid = weights_id(resolved.weights)  # what the export is keyed by (remembered: no second hashing)
    return export_built(resolved, precision, replace=replace), wid


def main(argv: list[str] | None = None) -> int:
    """``python -m isearchd.models.onnx_build_export KEY_OR_PATH WEIGHTS PRECISION [--replace]``."""
    return run_exporter(argv, "python -m isearchd.models.onnx_build_export", _export_file)


if __name__ == "__main__":
    sys.exit(main())
