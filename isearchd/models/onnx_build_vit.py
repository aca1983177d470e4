"""The ViT image tower as an ONNX graph, from numpy weights (manual and auto/pruned layouts alike).

open_clip's ``VisionTransformer`` with its defaults (class-token pooling, ln_pre, ln_post, a
projection without bias): patches by a Conv whose kernel and stride are the patch size, the class
token prepended (expanded to the batch), positional embeddings, ``ln_pre``, the residual blocks,
``ln_post`` on the class token, ``@ proj``. Sizes come from the tensors (``layers.vision_plan``):
a manual ViT is a plan whose every layer has all heads and the full MLP.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from isearchd.models.layers import vision_plan
from isearchd.models.onnx_graph import GraphBuilder
from isearchd.models.registry import ModelConfig

__all__ = ["vit_image_tower"]


def vit_image_tower(
    g: GraphBuilder, config: ModelConfig, image_size: int, *, quick_gelu: bool
) -> tuple[list[onnx.ValueInfoProto], str]:
    """Add the image tower to ``g``; return its input (``pixels``) and its output's name."""
    plan = vision_plan(g.tensors(), config)
    width = plan.width
    pixels = "pixels"
    patches = g.op(
        "Conv",
        pixels,
        g.const(g.take("visual.conv1.weight")),
        kernel_shape=[plan.patch, plan.patch],
        strides=[plan.patch, plan.patch],
    )  # (batch, width, grid, grid)
    tokens = g.op("Transpose", g.op("Reshape", patches, g.const([0, 0, -1])), perm=[0, 2, 1])
    cls = g.const(g.take("visual.class_embedding").reshape(1, 1, width), "class_embedding")
    cls = g.op("Expand", cls, g.batch_shape(pixels, 1, width))
    x = g.op("Concat", cls, tokens, axis=1)
    x = g.op("Add", x, g.const(g.take("visual.positional_embedding"), "positional_embedding"))
    x = g.layer_norm(x, "visual.ln_pre")
    x = g.transformer(x, "visual.", plan.layers, plan.head_width, quick_gelu=quick_gelu)
    first = g.op("Gather", x, g.const(np.int64(0)), axis=1)  # the class token: (batch, width)
    out = g.op("MatMul", g.layer_norm(first, "visual.ln_post"), g.const(g.take("visual.proj"), "proj"))
    return [
        helper.make_tensor_value_info(pixels, TensorProto.FLOAT, ["batch", 3, image_size, image_size])
    ], out
