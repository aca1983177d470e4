"""Build the ONNX towers straight from a checkpoint's numpy arrays: no torch (issue 26).

The graphs have the interface of the torch exporter's (``onnx_export.py``), so ``OnnxModel``
runs either:

- image: ``pixels`` float32 (batch, 3, size, size) -> ``embedding`` (batch, dim), unnormalised;
- text: ``embedded`` float32 (batch, length, width), rows of the token table (returned beside the
  graphs, saved as ``.npy``), and ``eot`` int64 (batch,) -> ``embedding`` (batch, dim).

Batch and length are dynamic. Which towers: the ViT image tower (manual and auto/pruned layouts,
``onnx_build_vit.py``), open_clip's ModifiedResNet (``onnx_build_resnet.py``) and CLIP's causal
text tower pooled at the end-of-text token (here). Embeddings equal the torch exporter's to
cosine >= 0.99999 (``tests/unit/test_onnx_build.py``), not bit for bit: the two order some float
sums differently.

Configs this builder cannot build (``unsupported``: timm or Hugging Face towers, other pooling,
layer scale, ...) are refused with the reason, and the caller may use the torch exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from isearchd.errors import ModelError
from isearchd.models.layers import Layers, text_plan, vision_plan
from isearchd.models.onnx_build_resnet import resnet_image_tower
from isearchd.models.onnx_build_vit import vit_image_tower
from isearchd.models.onnx_graph import GraphBuilder
from isearchd.models.registry import ModelConfig
from isearchd.models.resolve import image_size

__all__ = ["BuiltGraphs", "build_graphs", "unsupported"]

Array = npt.NDArray[Any]

# Config keys whose effect the builder reads off the tensors, or that do not change the graph.
_TOP_KEYS = frozenset(
    {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias"}
    | {"mask_image", "mask_text", "preprocess_cfg"}  # TinyCLIP's pruning switches, preprocessing
)
_VISION_KEYS = frozenset(
    {
        "image_size",
        "layers",
        "width",
        "patch_size",
        "head_width",
        "mlp_ratio",
        "patch_dropout",
        "output_tokens",
    }
)
_TEXT_KEYS = frozenset(
    {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "output_tokens"}
    | {"hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs", "pad_id", "eos_id"}  # tokenizer's
)
# Other keys pass when they hold open_clip's default (what CLIP builds when the key is absent).
_DEFAULTS: dict[str, Any] = {
    "pool_type": ("tok", "argmax"),
    "proj_type": ("linear",),
    "pos_embed_type": ("learnable",),
}
# Tensors inference does not use.
_UNUSED = ("logit_scale", "logit_bias", "attn_mask")
_BATCH_COUNT = ".num_batches_tracked"  # batch norms' training counter


@dataclass(frozen=True)
class BuiltGraphs:
    """The two graphs and the token table of one model."""

    image: onnx.ModelProto
    text: onnx.ModelProto
    token_table: npt.NDArray[np.float32]


def unsupported(config: ModelConfig) -> str | None:
    """Why this builder cannot build ``config`` (then the torch exporter may), or None."""
    if not isinstance(config.get("vision_cfg"), dict) or not isinstance(config.get("text_cfg"), dict):
        return "the config has no vision_cfg or text_cfg"
    extra = set(config) - _TOP_KEYS
    if config.get("custom_text"):
        return "custom text towers (Hugging Face models) are not built without torch"
    extra.discard("custom_text")
    for name, allowed, part in (
        ("vision_cfg", _VISION_KEYS, "vision"),
        ("text_cfg", _TEXT_KEYS, "text"),
    ):
        for key, value in config[name].items():
            harmless = value in (None, False, 0, "", {}) or value in _DEFAULTS.get(key, ())
            if key not in allowed and not harmless:
                extra.add(f"{part}.{key}")
    if extra:
        return f"config keys {', '.join(sorted(extra))} are not built without torch"
    layers = config["vision_cfg"].get("layers")
    if not isinstance(layers, int) and not (isinstance(layers, (list, tuple)) and len(layers) == 4):
        return f"vision layers {layers!r} are neither a ViT's depth nor a ResNet's four stages"
    return None


def _text_tower(
    g: GraphBuilder, config: ModelConfig, *, quick_gelu: bool
) -> tuple[list[onnx.ValueInfoProto], str]:
    """CLIP's causal text tower after the token lookup, pooled at ``eot``."""
    plan = text_plan(g.tensors(), config)
    context = plan.context_length
    embedded, eot = "embedded", "eot"
    length = g.op("Slice", g.op("Shape", embedded), g.const([1]), g.const([2]))
    positions = g.const(g.take("positional_embedding"), "positional_embedding")
    x = g.op("Add", embedded, g.op("Slice", positions, g.const([0]), length, g.const([0])))
    causal = np.triu(np.full((context, context), -np.inf, dtype=np.float32), 1)
    square = g.op("Concat", length, length, axis=0)
    mask = g.op("Slice", g.const(causal, "causal_mask"), g.const([0, 0]), square, g.const([0, 1]))
    x = g.transformer(x, "", plan.layers, plan.head_dim, quick_gelu=quick_gelu, mask=mask)
    x = g.layer_norm(x, "ln_final")
    pooled = g.op("GatherND", x, g.op("Unsqueeze", eot, g.const([1])), batch_dims=1)  # (batch, width)
    out = g.op("MatMul", pooled, g.const(g.take("text_projection"), "text_projection"))
    inputs = [
        helper.make_tensor_value_info(embedded, TensorProto.FLOAT, ["batch", "length", plan.width]),
        helper.make_tensor_value_info(eot, TensorProto.INT64, ["batch"]),
    ]
    return inputs, out


def _require_full(tower: str, width: int, layers: Layers, cfg: dict[str, Any], heads: int) -> None:
    """ModelError unless a tower has every layer at the config's full width (no pruning)."""
    mlp = int(int(cfg["width"]) * float(cfg.get("mlp_ratio", 4.0)))
    full = ((heads, mlp),) * int(cfg["layers"])
    if width != int(cfg["width"]) or layers != full:
        found = f"width {width}, {len(layers)} layers"
        raise ModelError(
            f"the {tower} tower has {found}; the architecture has width {cfg['width']}, {cfg['layers']} "
            "layers, none pruned"
        )


def _check_unpruned(tensors: dict[str, Array], config: ModelConfig) -> None:
    """A model that is not pruned (a manual TinyCLIP key, a custom open_clip model) has its
    config's exact sizes: the planners alone accept any pruning within the config's bounds."""
    vision_cfg, text_cfg = config["vision_cfg"], config["text_cfg"]
    if isinstance(vision_cfg["layers"], int):
        plan = vision_plan(dict(tensors), config)
        heads = int(vision_cfg["width"]) // plan.head_width
        _require_full("image", plan.width, plan.layers, vision_cfg, heads)
    text = text_plan(dict(tensors), config)
    _require_full("text", text.width, text.layers, text_cfg, int(text_cfg["heads"]))


def build_graphs(
    state_dict: dict[str, Array], config: ModelConfig, metadata: dict[str, str], *, pruned: bool = True
) -> BuiltGraphs:
    """The image and text graphs of open_clip-named ``state_dict`` (``checkpoint.read_state_dict``).

    ``config`` is the architecture (for auto models the unpruned base: the tensors give the pruned
    sizes). ``pruned=False``: the tensors must have the config's exact sizes. ModelError if the
    config is ``unsupported`` or the tensors do not fit it.
    """
    reason = unsupported(config)
    if reason is not None:
        raise ModelError(reason)
    tensors = {k: v for k, v in state_dict.items() if k not in _UNUSED and not k.endswith(_BATCH_COUNT)}
    if not pruned:
        _check_unpruned(tensors, config)
    g = GraphBuilder(tensors)
    quick = bool(config.get("quick_gelu", False))
    dim = int(config["embed_dim"])
    size = image_size(config)
    if isinstance(config["vision_cfg"]["layers"], int):
        image_inputs, image_out = vit_image_tower(g, config, size, quick_gelu=quick)
    else:
        image_inputs, image_out = resnet_image_tower(g, config, size)
    image = g.model(image_inputs, image_out, dim, metadata)
    t = GraphBuilder(tensors)
    text_inputs, text_out = _text_tower(t, config, quick_gelu=quick)
    text = t.model(text_inputs, text_out, dim, metadata)
    table = np.ascontiguousarray(t.take("token_embedding.weight"), dtype=np.float32)
    left = sorted(set(g.unused()) & set(t.unused()))
    if left:
        shown = ", ".join(left[:5]) + (" …" if len(left) > 5 else "")
        raise ModelError(f"tensors do not match the architecture: unexpected {shown}")
    return BuiltGraphs(image, text, table)
