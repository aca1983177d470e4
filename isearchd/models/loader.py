"""``load_model``: from a model key (or a custom checkpoint path) to a ready ``Model``.

- Standard TinyCLIP keys: an open_clip ``CLIP`` from our JSON config, loaded with the
  checkpoint's tensors (manual TinyCLIP keys mapped onto open_clip names).
- "auto" keys: compact towers built from the checkpoint's tensor shapes (``compact.py``).
- A path ``NAME.pt`` with ``NAME.json`` (an open_clip model config) beside it: a user's own
  model, in plain open_clip or TinyCLIP layout; its key is ``custom:NAME.pt``.

Modules are created on the ``meta`` device and take the checkpoint's tensors as they are
(``load_state_dict(assign=True)``): no time is spent on random initialisation that would be
overwritten, which keeps loading ViT-45LY well under 2 s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from open_clip.model import CLIP

from isearchd.errors import ModelError
from isearchd.models.checkpoint import load_error_message, read_state_dict
from isearchd.models.compact import build_compact
from isearchd.models.model import Model
from isearchd.models.registry import ModelConfig
from isearchd.models.resolve import ResolvedModel, resolve
from isearchd.models.towers import OpenClipTowers, Towers, causal_mask

__all__ = ["build_towers", "load_model", "load_resolved"]

log = logging.getLogger(__name__)

# Top-level open_clip config keys that ``CLIP`` accepts; anything else is refused, not ignored.
_CLIP_ARGS = frozenset(
    {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias"}
)
# Informational keys some configs carry (TinyCLIP's pruning switches, open_clip's preprocessing).
_IGNORED_CONFIG_KEYS = frozenset({"mask_image", "mask_text", "custom_text", "preprocess_cfg"})


def load_model(key_or_path: str, weights: str | Path | None = None, device: str = "cpu") -> Model:
    """Load a model by registry key or custom checkpoint path with the torch backend.

    ``weights`` is the checkpoint file for a registry key; None means the weights cache
    (``WeightsMissing`` explains how to fill it). Every problem with the file or its shapes
    raises ``ModelError`` naming the file and the reason. (``isearchd.models.load_model`` also
    offers the ONNX Runtime backend.)
    """
    return load_resolved(resolve(key_or_path, weights), device)


def load_resolved(resolved: ResolvedModel, device: str = "cpu") -> Model:
    """The torch ``Model`` of an already resolved key or path."""
    started = time.perf_counter()
    torch_device = _device(device)
    path, config, what = resolved.weights, resolved.config, resolved.what
    arrays, layout = read_state_dict(path)
    state_dict = {name: torch.from_numpy(array) for name, array in arrays.items()}
    if layout == "auto" and resolved.registry and not resolved.auto:
        # A standard architecture has fixed shapes; a pruned file can only be another model.
        raise ModelError(f"{path}: not a checkpoint of {what}: it holds a pruned (auto) TinyCLIP model")
    try:
        towers = build_towers(state_dict, config, auto=resolved.auto or layout == "auto")
    except ModelError as exc:
        raise ModelError(f"{path}: not a checkpoint of {what}: {exc.message}") from None
    if isinstance(towers, torch.nn.Module):
        towers.to(torch_device)
    model = Model(
        key=resolved.key,
        towers=towers,
        dim=resolved.dim,
        image_size=resolved.image_size,
        context_length=resolved.context_length,
        weights_path=path,
        device=torch_device,
    )
    log.info(
        "loaded %s from %s (%s layout, %.1fM parameters) in %.2f s",
        resolved.key,
        path,
        layout,
        model.num_parameters / 1e6,
        time.perf_counter() - started,
    )
    return model


def build_towers(state_dict: dict[str, torch.Tensor], config: ModelConfig, *, auto: bool) -> Towers:
    """Towers for open_clip-named tensors: compact (auto) or an open_clip CLIP; ModelError on mismatch."""
    if auto:
        return build_compact(state_dict, config)
    return OpenClipTowers(_build_open_clip(state_dict, config)).eval()


def _device(name: str) -> torch.device:
    try:
        return torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"invalid device {name!r}: {exc}") from None


def _build_open_clip(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> CLIP:
    unknown = set(config) - _CLIP_ARGS - _IGNORED_CONFIG_KEYS
    if unknown:
        raise ModelError(f"unsupported config keys {sorted(unknown)}")
    if config.get("custom_text") or "hf_model_name" in config["text_cfg"]:
        raise ModelError("custom text towers (Hugging Face models) are not supported")
    if config["vision_cfg"].get("timm_model_name"):
        raise ModelError("timm image towers are not supported")
    args = {k: v for k, v in config.items() if k in _CLIP_ARGS}
    try:
        with torch.device("meta"):
            clip = CLIP(**args)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelError(f"invalid model config ({exc})") from None
    sd = dict(state_dict)
    try:
        clip.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(load_error_message(exc)) from None
    # Non-persistent buffers are not in the checkpoint: rebuild them off the meta device.
    if clip.attn_mask is not None:
        clip.attn_mask = causal_mask(clip.attn_mask.shape[0], torch.device("cpu"))
    for name, tensor in list(clip.named_parameters()) + list(clip.named_buffers()):
        if tensor.is_meta:
            raise ModelError(f"the checkpoint leaves {name!r} uninitialised")
    return clip.eval().requires_grad_(False)
