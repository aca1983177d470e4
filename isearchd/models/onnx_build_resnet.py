"""open_clip's ModifiedResNet image tower (the RN-19L and RN-30L keys) as an ONNX graph, no torch.

The network, as ``open_clip.modified_resnet`` defines it:

1. a stem of three 3x3 convolutions (the first with stride 2), each followed by batch norm and
   ReLU, then a 2x2 average pool;
2. four stages of bottleneck blocks (``vision_cfg.layers`` blocks each; the first block of stages
   2-4 has stride 2): 1x1 conv, 3x3 conv, a 2x2 average pool where the stride is 2, 1x1 conv, each
   with batch norm; the shortcut of a block that changes shape is average pool, 1x1 conv, batch
   norm; ReLU after the sum;
3. an attention pool: the feature map flattened to tokens, their mean prepended, positional
   embeddings added; one query (the mean token) attends over all tokens with
   ``width x 32 / head_width`` heads; ``c_proj`` gives the embedding.

Batch norms run in inference mode, so each is folded into the convolution before it (in numpy,
epsilon 1e-5, open_clip's): ``W' = W γ/√(var+ε)``, ``b' = β − mean γ/√(var+ε)``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from isearchd.errors import ModelError
from isearchd.models.onnx_graph import LN_EPS, GraphBuilder
from isearchd.models.registry import ModelConfig

__all__ = ["resnet_image_tower"]

BN_EPS = LN_EPS  # nn.BatchNorm2d's default, as open_clip builds it


def _conv_bn(g: GraphBuilder, x: str, conv: str, bn: str, *, stride: int = 1) -> str:
    """``bn(conv(x))`` as one Conv with the batch norm folded into its weight and bias."""
    weight = g.take(conv + ".weight")
    gamma, beta = g.take(bn + ".weight"), g.take(bn + ".bias")
    mean, var = g.take(bn + ".running_mean"), g.take(bn + ".running_var")
    scale = gamma / np.sqrt(var + BN_EPS)
    folded = weight * scale.reshape(-1, 1, 1, 1)
    kernel = int(weight.shape[-1])
    pad = kernel // 2
    return g.op(
        "Conv",
        x,
        g.const(folded, "conv"),
        g.const(beta - mean * scale, "conv_bias"),
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
    )


def _avg_pool(g: GraphBuilder, x: str, size: int) -> str:
    return g.op("AveragePool", x, kernel_shape=[size, size], strides=[size, size])


def _bottleneck(g: GraphBuilder, x: str, prefix: str, stride: int) -> str:
    out = g.op("Relu", _conv_bn(g, x, prefix + "conv1", prefix + "bn1"))
    out = g.op("Relu", _conv_bn(g, out, prefix + "conv2", prefix + "bn2"))
    if stride > 1:
        out = _avg_pool(g, out, stride)
    out = _conv_bn(g, out, prefix + "conv3", prefix + "bn3")
    identity = x
    if prefix + "downsample.0.weight" in g.tensors():
        if stride > 1:
            identity = _avg_pool(g, identity, stride)
        identity = _conv_bn(g, identity, prefix + "downsample.0", prefix + "downsample.1")
    return g.op("Relu", g.op("Add", out, identity))


def _attention_pool(g: GraphBuilder, x: str, heads: int) -> str:
    """open_clip's ``AttentionPool2d``: the mean token attends over all; (batch, output dim)."""
    positions = g.take("visual.attnpool.positional_embedding")
    width = int(positions.shape[1])
    if width % heads:
        raise ModelError(f"the attention pool's width {width} does not split into {heads} heads")
    head_dim = width // heads
    tokens = g.op("Transpose", g.op("Reshape", x, g.const([0, 0, -1])), perm=[0, 2, 1])  # (batch, hw, c)
    mean = g.op("ReduceMean", tokens, axes=[1], keepdims=1)
    tokens = g.op("Add", g.op("Concat", mean, tokens, axis=1), g.const(positions, "positional_embedding"))
    first = g.op("Slice", tokens, g.const([0]), g.const([1]), g.const([1]))
    q = g.heads(g.dense(first, "visual.attnpool.q_proj"), heads, head_dim)
    k = g.heads(g.dense(tokens, "visual.attnpool.k_proj"), heads, head_dim)
    v = g.heads(g.dense(tokens, "visual.attnpool.v_proj"), heads, head_dim)
    pooled = g.merge_heads(g.attend(q, k, v, head_dim, None), width)  # (batch, 1, width)
    out = g.dense(pooled, "visual.attnpool.c_proj")
    return g.op("Gather", out, g.const(np.int64(0)), axis=1)


def resnet_image_tower(
    g: GraphBuilder, config: ModelConfig, image_size: int
) -> tuple[list[onnx.ValueInfoProto], str]:
    """Add the image tower to ``g``; return its input (``pixels``) and its output's name."""
    vision_cfg = config["vision_cfg"]
    depths = [int(n) for n in vision_cfg["layers"]]
    heads = int(vision_cfg["width"]) * 32 // int(vision_cfg.get("head_width", 64))
    pixels = "pixels"
    x = pixels
    for i in (1, 2, 3):
        x = g.op("Relu", _conv_bn(g, x, f"visual.conv{i}", f"visual.bn{i}", stride=2 if i == 1 else 1))
    x = _avg_pool(g, x, 2)
    for stage, depth in enumerate(depths, start=1):
        for block in range(depth):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _bottleneck(g, x, f"visual.layer{stage}.{block}.", stride)
    out = _attention_pool(g, x, heads)
    return [
        helper.make_tensor_value_info(pixels, TensorProto.FLOAT, ["batch", 3, image_size, image_size])
    ], out
