"""The sizes of a CLIP model read off its tensor shapes (no torch): shared by both exporters.

TinyCLIP's "auto" checkpoints are pruned per layer (see ``compact.py``): the residual widths,
each layer's heads and MLP width, and which sublayers exist at all can only be read off the
tensors. The torch towers (``compact.py``) and the torch-free ONNX builder (``onnx_build.py``)
both build from the plans made here, so they cannot disagree about a checkpoint; the
builder also plans the standard (manual) ViTs this way, where every layer has the full width.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from isearchd.errors import ModelError
from isearchd.models.registry import ModelConfig

__all__ = ["Layers", "TextPlan", "VisionPlan", "layer_plan", "tensor_shape", "text_plan", "vision_plan"]


# (attention heads, MLP width) per layer; 0 where the checkpoint has no such sublayer.
Layers = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class VisionPlan:
    """Sizes of a ViT image tower: residual width, patch, grid side, head width, layers."""

    width: int
    patch: int
    grid: int
    head_width: int
    layers: Layers


@dataclass(frozen=True)
class TextPlan:
    """Sizes of a text tower: residual width, head width, layers, vocabulary, context length."""

    width: int
    head_dim: int
    layers: Layers
    vocab_size: int
    context_length: int


def tensor_shape(sd: dict[str, Any], key: str) -> tuple[int, ...]:
    """The shape of ``sd[key]``; ModelError naming the tensor if it is missing."""
    try:
        return tuple(int(n) for n in sd[key].shape)
    except KeyError:
        raise ModelError(f"missing tensor {key!r}") from None


def layer_plan(
    sd: dict[str, Any], prefix: str, width: int, head_dim: int, max_layers: int, max_heads: int
) -> Layers:
    """(heads, mlp width) per layer, from the shapes of ``<prefix>transformer.resblocks.<i>.*``.

    The layer norm of a sublayer pruned away is dropped from ``sd`` (the reference may leave it).
    """
    tower = "vision" if prefix else "text"
    pattern = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    indices = {int(m.group(1)) for m in map(pattern.match, sd) if m is not None}
    if not indices:
        raise ModelError(f"no {tower} transformer layers")
    depth = max(indices) + 1
    if depth > max_layers:
        raise ModelError(f"{depth} {tower} transformer layers, the architecture has {max_layers}")
    plan: list[tuple[int, int]] = []
    for i in range(depth):
        block = f"{prefix}transformer.resblocks.{i}."
        heads = 0
        if block + "attn.in_proj_weight" in sd:
            rows, cols = tensor_shape(sd, block + "attn.in_proj_weight")
            if cols != width or rows % (3 * head_dim):
                raise ModelError(
                    f"{block}attn.in_proj_weight has shape {(rows, cols)}, "
                    f"expected (3 x heads x {head_dim}, {width})"
                )
            heads = rows // (3 * head_dim)
            if heads > max_heads:
                raise ModelError(f"{block}attn has {heads} heads, the architecture has at most {max_heads}")
        else:
            for name in ("ln_1.weight", "ln_1.bias"):
                sd.pop(block + name, None)  # a pruned-away attention may leave its norm behind
        mlp_width = 0
        if block + "mlp.c_fc.weight" in sd:
            rows, cols = tensor_shape(sd, block + "mlp.c_fc.weight")
            if cols != width or rows > 4 * max_heads * head_dim:
                raise ModelError(
                    f"{block}mlp.c_fc.weight has shape {(rows, cols)}, which does not fit width {width}"
                )
            mlp_width = rows
        else:
            for name in ("ln_2.weight", "ln_2.bias"):
                sd.pop(block + name, None)
        plan.append((heads, mlp_width))
    return tuple(plan)


def _expect(sd: dict[str, Any], key: str, shape: tuple[int, ...], why: str = "") -> None:
    found = tensor_shape(sd, key)
    if found != shape:
        raise ModelError(f"{key} has shape {found}, expected {shape}{why}")


def vision_plan(sd: dict[str, Any], config: ModelConfig) -> VisionPlan:
    """The sizes of ``sd``'s ViT image tower within the (unpruned) ``config``; ModelError else.

    ``config`` bounds every width and fixes patch size, image size and embedding dimension.
    """
    vision_cfg = config["vision_cfg"]
    head_width = int(vision_cfg.get("head_width", 64))
    max_width = int(vision_cfg["width"])
    patch = int(vision_cfg["patch_size"])
    image_size = int(vision_cfg["image_size"])
    (width,) = tensor_shape(sd, "visual.ln_pre.weight")
    _expect(sd, "visual.conv1.weight", (width, 3, patch, patch), f" for patch size {patch}")
    if width > max_width:
        raise ModelError(f"vision width {width} exceeds the architecture's {max_width}")
    grid = image_size // patch
    _expect(sd, "visual.positional_embedding", (grid * grid + 1, width), f" for {image_size}px images")
    _expect(sd, "visual.proj", (width, int(config["embed_dim"])))
    layers = layer_plan(sd, "visual.", width, head_width, int(vision_cfg["layers"]), max_width // head_width)
    return VisionPlan(width, patch, grid, head_width, layers)


def text_plan(sd: dict[str, Any], config: ModelConfig) -> TextPlan:
    """The sizes of ``sd``'s text tower within the (unpruned) ``config``; ModelError else."""
    text_cfg = config["text_cfg"]
    context_length = int(text_cfg.get("context_length", 77))
    vocab_size = int(text_cfg.get("vocab_size", 49408))
    max_width = int(text_cfg["width"])
    heads = int(text_cfg["heads"])
    head_dim = max_width // heads
    positions = tensor_shape(sd, "positional_embedding")
    width = positions[1]
    if positions[0] != context_length or width > max_width:
        raise ModelError(
            f"positional_embedding has shape {positions}, expected ({context_length}, <= {max_width})"
        )
    _expect(sd, "token_embedding.weight", (vocab_size, width))
    _expect(sd, "text_projection", (width, int(config["embed_dim"])))
    layers = layer_plan(sd, "", width, head_dim, int(text_cfg["layers"]), heads)
    return TextPlan(width, head_dim, layers, vocab_size, context_length)
