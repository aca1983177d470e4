"""Export a torch ``Model``'s towers to ONNX (fp32, optionally dynamic int8) for ONNX Runtime.

Graphs (opset ``OPSET``):

- image: ``pixels`` float32 (batch, 3, size, size) -> ``embedding`` (batch, dim), unnormalised;
- text: ``embedded`` float32 (batch, length, width), the rows of the token table (saved beside
  the graphs as a ``.npy`` file, looked up by the caller), and ``eot`` int64 (batch,), each row's
  end-of-text position -> ``embedding`` (batch, dim), unnormalised. The caller cuts the batch
  after its last end-of-text token, like the torch path (exact for CLIP's causal text tower;
  towers pooled otherwise are not exported).

Exporter: torch's TorchScript-based ``torch.onnx.export(dynamo=False)``. The dynamo exporter
needs onnxscript (not a dependency) and takes far longer. The tracer cannot follow
``nn.MultiheadAttention`` (its fused fast path has no ONNX form, and its reshapes bake the
traced sequence length into the graph), nor the ResNet attention pool's
``F.multi_head_attention_forward``; before tracing, those modules are swapped for
mathematically identical ones built on ``scaled_dot_product_attention`` with shape-agnostic
reshapes. ``tests/unit/test_onnx.py`` checks every architecture against the torch path.

int8: ``onnxruntime.quantization.quantize_dynamic`` on MatMul/Gemm nodes only (weights int8 per
output channel, activations uint8 quantised per batch at run time). Convolutions stay fp32:
ConvInteger is about 5x slower than fp32 Conv in ONNX Runtime on CPUs, which would make the
ResNets slower, not faster. The recipe (``export_steps.QUANTIZATION``) is chosen so that every
x86-64 CPU computes the same integer products: see there.

This is the fallback exporter (``--exporter torch``); by default the graphs are built without
torch by ``onnx_build`` (``onnx_build_export.py``), with the same interface, metadata and int8.

Run as ``python -m isearchd.models.onnx_export KEY_OR_PATH WEIGHTS PRECISION [--replace]`` (what
``isearchd.models.load_model`` does on a cache miss with this exporter, so the daemon itself never
imports torch).
"""

from __future__ import annotations

import inspect
import logging
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from isearchd.errors import ModelError
from isearchd.models.export_steps import (
    export_metadata,
    make_int8,
    remove_stale,
    run_exporter,
    save_token_table,
)
from isearchd.models.exports import ExportPaths, atomic_write, export_paths
from isearchd.models.model import Model

__all__ = ["OPSET", "export_model"]

log = logging.getLogger(__name__)

OPSET = 17
# Shapes used while tracing; all axes that vary are declared dynamic.
_TRACE_BATCH = 2
_TRACE_LENGTH = 7


class _SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` (self-attention, packed in-projection) in traceable form."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if mha.in_proj_weight is None or mha.bias_k is not None or mha.add_zero_attn:
            raise ModelError("unsupported attention layout (separate q/k/v widths or bias_k/v)")
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj
        self.heads = mha.num_heads
        self.head_dim = mha.head_dim
        self.batch_first = mha.batch_first

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, None]:
        if key is not None and key is not query:
            raise ModelError("cross-attention is not supported by the ONNX export")
        x = query if self.batch_first else query.transpose(0, 1)  # (n, length, width)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.out_proj(out.transpose(1, 2).flatten(2))
        return (out if self.batch_first else out.transpose(0, 1)), None


def _attention_pool_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """open_clip's ``AttentionPool2d.forward`` (ResNet towers) with traceable reshapes."""
    x = x.flatten(2).permute(0, 2, 1)  # (n, h*w, c)
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding
    heads = int(self.num_heads)
    q = self.q_proj(x[:, :1]).unflatten(-1, (heads, -1)).transpose(1, 2)
    k = self.k_proj(x).unflatten(-1, (heads, -1)).transpose(1, 2)
    v = self.v_proj(x).unflatten(-1, (heads, -1)).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v)  # (n, heads, 1, head_dim)
    out = self.c_proj(out.transpose(1, 2).flatten(2))
    return out[:, 0]


def _make_traceable(root: nn.Module) -> None:
    """Swap the modules the tracer cannot export faithfully (in place: export-only models)."""
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(parent, name, _SelfAttention(child))
            elif type(child).__name__ == "AttentionPool2d" and hasattr(child, "q_proj"):
                child.forward = types.MethodType(_attention_pool_forward, child)


class _ImageGraph(nn.Module):
    def __init__(self, towers: Any) -> None:
        super().__init__()
        self.towers = towers

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.towers.encode_image(pixels)
        return out


class _TextGraph(nn.Module):
    def __init__(self, towers: Any) -> None:
        super().__init__()
        self.towers = towers

    def forward(self, embedded: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.towers.encode_embedded_text(embedded, eot)
        return out


def export_model(model: Model, precision: str = "fp32", *, replace: bool = False) -> ExportPaths:
    """Export ``model``'s towers into the cache (fp32 always; int8 from it); return the paths.

    ``replace``: export again even if the cache has the graphs (made by either exporter).
    """
    towers = model.towers
    if not isinstance(towers, nn.Module) or not hasattr(towers, "encode_embedded_text"):
        raise ModelError(f"{model.key}: its towers cannot be exported to ONNX")
    if not getattr(towers, "trims_text", False):
        raise ModelError(f"{model.key}: only text towers pooled at the end-of-text token can be exported")
    base = model.key
    wid = model.weights_id
    fp32 = export_paths(base, wid, "fp32")
    metadata = export_metadata(
        base,
        wid,
        dim=model.dim,
        image_size=model.image_size,
        context_length=model.context_length,
        exporter="torch",
    )
    if replace or not fp32.exist():
        started = time.perf_counter()
        towers = towers.to("cpu").eval()
        _make_traceable(towers)
        size = model.image_size
        pixels = torch.randn(_TRACE_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
        lookup: Any = getattr(towers, "clip", towers).token_embedding
        table: torch.Tensor = lookup.weight.detach().float()
        embedded = table[:_TRACE_LENGTH].unsqueeze(0).repeat(_TRACE_BATCH, 1, 1)
        eot = torch.tensor([_TRACE_LENGTH - 1, _TRACE_LENGTH - 3])
        # eval() on the wrappers too: the exporter restores each graph's training flag afterwards,
        # recursively, and a wrapper left in training mode would switch BatchNorm to batch statistics.
        _export(_ImageGraph(towers).eval(), (pixels,), {"pixels": {0: "batch"}}, fp32.image, metadata)
        text_axes = {"embedded": {0: "batch", 1: "length"}, "eot": {0: "batch"}}
        _export(_TextGraph(towers).eval(), (embedded, eot), text_axes, fp32.text, metadata)
        save_token_table(table.numpy(), fp32.token_table)
        remove_stale(base, wid)
        log.info("exported %s to %s in %.1f s", model.key, fp32.directory, time.perf_counter() - started)
    if precision == "fp32":
        return fp32
    return make_int8(base, wid, replace=replace)


class _ExporterChoice(TypedDict, total=False):
    dynamo: bool


def _legacy_exporter() -> _ExporterChoice:
    """``dynamo=False`` where torch has the switch (2.5+; the default flipped to dynamo in 2.9)."""
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        return {"dynamo": False}
    return {}


def _export(
    graph: nn.Module,
    example: tuple[torch.Tensor, ...],
    axes: dict[str, dict[int, str]],
    target: Path,
    metadata: dict[str, str],
) -> None:
    import onnx

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about shapes turned into constants
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                input_names=list(axes),
                output_names=["embedding"],
                dynamic_axes={**axes, "embedding": {0: "batch"}},
                opset_version=OPSET,
                **_legacy_exporter(),
            )
        proto = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))

    atomic_write(target, write)


def _export_file(model_name: str, weights: str, precision: str, replace: bool) -> tuple[ExportPaths, str]:
    from isearchd.models.loader import load_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_model(model_name, weights=weights)
    return export_model(model, precision, replace=replace), model.weights_id


def main(argv: list[str] | None = None) -> int:
    """``python -m isearchd.models.onnx_export KEY_OR_PATH WEIGHTS PRECISION``: export into the cache."""
    return run_exporter(argv, "python -m isearchd.models.onnx_export", _export_file)


if __name__ == "__main__":
    sys.exit(main())
