"""A small ONNX graph builder over ``onnx.helper``, with the pieces CLIP's towers are made of.

Why ``onnx.helper``: ``onnx`` is already a dependency (ONNX Runtime's quantiser needs it), and a
CLIP tower is a few dozen node kinds in a fixed pattern; ``onnxscript`` or ``spox`` would each be
a new dependency for what a hundred lines of ``make_node`` calls do. The builder takes numpy
arrays straight from the checkpoint (no torch) and names every value itself.

Conventions that keep the graphs interchangeable with the torch exporter's (``onnx_export.py``):

- a Linear layer is ``MatMul(x, Wᵀ)`` with the transposed weight as an initializer, then
  ``Add(bias)``: ``quantize_dynamic`` finds the same weight matrices and quantises them per output
  channel, so the int8 recipe (``export_steps.QUANTIZATION``) stays what it is;
- layer norms are ``LayerNormalization`` (epsilon 1e-5, open_clip's), GELU is the exact
  ``0.5 x (1 + erf(x / √2))`` (or QuickGELU ``x σ(1.702 x)`` where a config asks for it): ONNX
  Runtime's optimiser fuses both into its own kernels when the session loads;
- attention is written out: ``softmax(q kᵀ / √d + mask) v`` per head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from isearchd.errors import ModelError

__all__ = ["LN_EPS", "OPSET", "GraphBuilder"]

OPSET = 17  # as the torch exporter (onnx_export.OPSET): LayerNormalization needs 17
LN_EPS = 1e-5  # open_clip's LayerNorm and BatchNorm default
Array = npt.NDArray[Any]


class GraphBuilder:
    """Nodes and initializers of one graph; ``take`` hands out the checkpoint's tensors once each."""

    def __init__(self, tensors: dict[str, Array]) -> None:
        self._tensors = tensors
        self._used: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def take(self, key: str) -> Array:
        """The checkpoint tensor ``key`` as float32 (ModelError if missing)."""
        try:
            array = self._tensors[key]
        except KeyError:
            raise ModelError(f"missing tensor {key!r}") from None
        self._used.add(key)
        return np.asarray(array, dtype=np.float32)

    def tensors(self) -> dict[str, Array]:
        """The checkpoint's tensors (the size planners read their shapes, and drop empty norms)."""
        return self._tensors

    def unused(self) -> list[str]:
        """Tensors no node has taken (sorted)."""
        return sorted(set(self._tensors) - self._used)

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array: Array | np.generic | Sequence[int] | Sequence[float], hint: str = "c") -> str:
        """An initializer holding ``array`` (lists of ints become int64)."""
        value = np.asarray(array)
        if value.dtype.kind == "i":
            value = value.astype(np.int64)
        elif value.dtype != np.float32:
            value = value.astype(np.float32)
        name = self._name(hint)
        # copy(order="C"), not ascontiguousarray, which would make a 0-d index 1-d
        self.initializers.append(numpy_helper.from_array(value.copy(order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """Append a node with one output; return the output's name."""
        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, weight: Array, bias: Array | None = None) -> str:
        """``x Wᵀ + b`` as MatMul (transposed weight initializer) and Add: what the quantiser finds."""
        out = self.op("MatMul", x, self.const(np.ascontiguousarray(weight.T), "weight"))
        return out if bias is None else self.op("Add", out, self.const(bias, "bias"))

    def dense(self, x: str, prefix: str) -> str:
        """The Linear layer ``<prefix>.weight``/``.bias`` of the checkpoint."""
        return self.linear(x, self.take(prefix + ".weight"), self.take(prefix + ".bias"))

    def layer_norm(self, x: str, prefix: str) -> str:
        scale, bias = self.const(self.take(prefix + ".weight")), self.const(self.take(prefix + ".bias"))
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=LN_EPS)

    def gelu(self, x: str, quick: bool) -> str:
        if quick:
            return self.op("Mul", x, self.op("Sigmoid", self.op("Mul", x, self.const([1.702]))))
        erf = self.op("Erf", self.op("Div", x, self.const([math.sqrt(2.0)])))
        return self.op("Mul", self.op("Mul", x, self.op("Add", erf, self.const([1.0]))), self.const([0.5]))

    def heads(self, x: str, heads: int, head_dim: int) -> str:
        """(batch, length, heads x head_dim) -> (batch, heads, length, head_dim)."""
        split = self.op("Reshape", x, self.const([0, 0, heads, head_dim]))
        return self.op("Transpose", split, perm=[0, 2, 1, 3])

    def attend(self, q: str, k: str, v: str, head_dim: int, mask: str | None) -> str:
        """softmax(q kᵀ / √d + mask) v on (batch, heads, length, head_dim) tensors."""
        scores = self.op("MatMul", q, self.op("Transpose", k, perm=[0, 1, 3, 2]))
        scores = self.op("Mul", scores, self.const([1.0 / math.sqrt(head_dim)]))
        if mask is not None:
            scores = self.op("Add", scores, mask)
        return self.op("MatMul", self.op("Softmax", scores, axis=-1), v)

    def merge_heads(self, x: str, width: int) -> str:
        """(batch, heads, length, head_dim) -> (batch, length, heads x head_dim)."""
        return self.op("Reshape", self.op("Transpose", x, perm=[0, 2, 1, 3]), self.const([0, 0, width]))

    def self_attention(self, x: str, prefix: str, heads: int, head_dim: int, mask: str | None) -> str:
        """open_clip's packed-projection self-attention ``<prefix>.in_proj_*``, ``.out_proj``."""
        inner = heads * head_dim
        qkv = self.linear(x, self.take(prefix + ".in_proj_weight"), self.take(prefix + ".in_proj_bias"))
        packed = self.op("Reshape", qkv, self.const([0, 0, 3, heads, head_dim]))
        parts = self.op("Transpose", packed, perm=[2, 0, 3, 1, 4])  # (3, batch, heads, length, d)
        q, k, v = (self.op("Gather", parts, self.const(np.int64(i)), axis=0) for i in range(3))
        out = self.merge_heads(self.attend(q, k, v, head_dim, mask), inner)
        return self.dense(out, prefix + ".out_proj")

    def transformer(
        self,
        x: str,
        prefix: str,
        layers: Sequence[tuple[int, int]],
        head_dim: int,
        *,
        quick_gelu: bool,
        mask: str | None = None,
    ) -> str:
        """Residual blocks ``<prefix>transformer.resblocks.<i>``; a sublayer of width 0 is skipped."""
        for i, (heads, mlp_width) in enumerate(layers):
            block = f"{prefix}transformer.resblocks.{i}."
            if heads:
                attn = self.self_attention(
                    self.layer_norm(x, block + "ln_1"), block + "attn", heads, head_dim, mask
                )
                x = self.op("Add", x, attn)
            if mlp_width:
                hidden = self.gelu(
                    self.dense(self.layer_norm(x, block + "ln_2"), block + "mlp.c_fc"), quick_gelu
                )
                x = self.op("Add", x, self.dense(hidden, block + "mlp.c_proj"))
        return x

    def batch_shape(self, x: str, *rest: int) -> str:
        """The 1-D shape ``(batch of x, *rest)`` for Expand/Reshape."""
        batch = self.op("Slice", self.op("Shape", x), self.const([0]), self.const([1]))
        return self.op("Concat", batch, self.const(list(rest)), axis=0)

    def model(
        self,
        inputs: Sequence[onnx.ValueInfoProto],
        output: str,
        dim: int,
        metadata: dict[str, str],
    ) -> onnx.ModelProto:
        """The finished model: ``output`` becomes ``embedding`` (batch, dim); shapes checked."""
        self.nodes.append(helper.make_node("Identity", [output], ["embedding"]))
        graph = helper.make_graph(
            self.nodes,
            "isearch",
            list(inputs),
            [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
            self.initializers,
        )
        # IR version 8: what the torch exporter writes for opset 17, and ONNX Runtime reads since 1.14
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
        helper.set_model_props(proto, metadata)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"tensors do not fit the architecture: {first}") from None
        return proto
