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

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from open_clip.model import CLIP

from isearchd.errors import ModelError
from isearchd.models.checkpoint import load_error_message, read_state_dict
from isearchd.models.compact import build_compact
from isearchd.models.model import Model
from isearchd.models.registry import MODELS, arch_config, get_spec
from isearchd.models.towers import OpenClipTowers, Towers, causal_mask

__all__ = ["build_towers", "load_model"]

log = logging.getLogger(__name__)

# Top-level open_clip config keys that ``CLIP`` accepts; anything else is refused, not ignored.
_CLIP_ARGS = frozenset(
    {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias"}
)
# Informational keys some configs carry (TinyCLIP's pruning switches, open_clip's preprocessing).
_IGNORED_CONFIG_KEYS = frozenset({"mask_image", "mask_text", "custom_text", "preprocess_cfg"})


def load_model(key_or_path: str, weights: str | Path | None = None, device: str = "cpu") -> Model:
    """Load a model by registry key or custom checkpoint path.

    ``weights`` is the checkpoint file for a registry key; None means the weights cache
    (``WeightsMissing`` explains how to fill it). Every problem with the file or its shapes
    raises ``ModelError`` naming the file and the reason.
    """
    started = time.perf_counter()
    torch_device = _device(device)
    spec_key = _registry_key(key_or_path)
    if spec_key is not None:
        spec = MODELS[spec_key]
        if weights is None:
            from isearchd.models.weights import cached_path  # weights.py imports this package

            path = cached_path(spec.key)
        else:
            path = Path(weights).expanduser()
        config = arch_config(spec.arch)
        key, auto, what = spec.key, spec.auto, f"{spec.key} ({spec.arch})"
    else:
        config_source = Path(key_or_path).expanduser()
        path = Path(weights).expanduser() if weights is not None else config_source
        config = _custom_config(config_source)
        key, auto = f"custom:{config_source.name}", False
        what = f"the config {config_source.with_suffix('.json')}"

    state_dict, layout = read_state_dict(path)
    if layout == "auto" and spec_key is not None and not auto:
        # A standard architecture has fixed shapes; a pruned file can only be another model.
        raise ModelError(f"{path}: not a checkpoint of {what}: it holds a pruned (auto) TinyCLIP model")
    try:
        towers = build_towers(state_dict, config, auto=auto or layout == "auto")
    except ModelError as exc:
        raise ModelError(f"{path}: not a checkpoint of {what}: {exc.message}") from None
    if isinstance(towers, torch.nn.Module):
        towers.to(torch_device)
    model = Model(
        key=key,
        towers=towers,
        dim=int(config["embed_dim"]),
        image_size=_image_size(config),
        context_length=int(config["text_cfg"].get("context_length", 77)),
        weights_path=path,
        device=torch_device,
    )
    log.info(
        "loaded %s from %s (%s layout, %.1fM parameters) in %.2f s",
        key,
        path,
        layout,
        model.num_parameters / 1e6,
        time.perf_counter() - started,
    )
    return model


def build_towers(state_dict: dict[str, torch.Tensor], config: dict[str, Any], *, auto: bool) -> Towers:
    """Towers for open_clip-named tensors: compact (auto) or an open_clip CLIP; ModelError on mismatch."""
    if auto:
        return build_compact(state_dict, config)
    return OpenClipTowers(_build_open_clip(state_dict, config))


def _registry_key(key_or_path: str) -> str | None:
    """The registry key ``key_or_path`` names, None if it is a path, ModelError if neither."""
    if key_or_path in MODELS:
        return key_or_path
    looks_like_path = (
        "/" in key_or_path
        or "\\" in key_or_path
        or key_or_path.endswith((".pt", ".pth", ".bin"))
        or Path(key_or_path).expanduser().exists()
    )
    if looks_like_path:
        return None
    return get_spec(key_or_path).key  # case-insensitive match, else ModelError listing the keys


def _device(name: str) -> torch.device:
    try:
        return torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"invalid device {name!r}: {exc}") from None


def _custom_config(checkpoint: Path) -> dict[str, Any]:
    config_path = checkpoint.with_suffix(".json")
    if not checkpoint.exists():
        raise ModelError(f"{checkpoint}: checkpoint file does not exist")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{checkpoint}: a custom model needs its open_clip config beside it, at {config_path}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_path}: not a readable JSON model config ({exc})") from None
    if not isinstance(config, dict) or not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ModelError(f"{config_path}: an open_clip model config needs embed_dim, vision_cfg and text_cfg")
    return config


def _image_size(config: dict[str, Any]) -> int:
    size = config["vision_cfg"].get("image_size", 224)
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ModelError(f"only square image sizes are supported, the config has {size}")
        size = size[0]
    return int(size)


def _build_open_clip(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> CLIP:
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
