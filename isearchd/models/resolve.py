"""From a model key or checkpoint path to the weights file and architecture config (no torch).

Both backends start here: the torch loader builds modules from the result, the ONNX Runtime
path only needs the file (to find its cached export) and the config's sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from isearchd.errors import ModelError
from isearchd.models.registry import MODELS, ModelConfig, arch_config, get_spec

__all__ = ["ResolvedModel", "image_size", "resolve"]


@dataclass(frozen=True)
class ResolvedModel:
    """What a model name stands for: its key, weights file and open_clip config."""

    key: str  # registry key or "custom:<file name>"
    source: str  # the key or checkpoint path as given to ``resolve``
    weights: Path
    config: ModelConfig
    auto: bool  # a pruned TinyCLIP architecture (compact towers)
    registry: bool  # a registry key (False: a custom checkpoint)
    what: str  # how error messages name it

    @property
    def dim(self) -> int:
        return int(self.config["embed_dim"])

    @property
    def image_size(self) -> int:
        return image_size(self.config)

    @property
    def context_length(self) -> int:
        return int(self.config["text_cfg"].get("context_length", 77))


def resolve(key_or_path: str, weights: str | Path | None = None) -> ResolvedModel:
    """Resolve a registry key (weights from the cache unless given) or a custom checkpoint path."""
    spec_key = _registry_key(key_or_path)
    if spec_key is not None:
        spec = MODELS[spec_key]
        if weights is None:
            from isearchd.models.weights import cached_path

            path = cached_path(spec.key)
        else:
            path = Path(weights).expanduser()
        return ResolvedModel(
            key=spec.key,
            source=spec.key,
            weights=path,
            config=arch_config(spec.arch),
            auto=spec.auto,
            registry=True,
            what=f"{spec.key} ({spec.arch})",
        )
    config_source = Path(key_or_path).expanduser()
    return ResolvedModel(
        key=f"custom:{config_source.name}",
        source=str(config_source),
        weights=Path(weights).expanduser() if weights is not None else config_source,
        config=_custom_config(config_source),
        auto=False,
        registry=False,
        what=f"the config {config_source.with_suffix('.json')}",
    )


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


def _custom_config(checkpoint: Path) -> ModelConfig:
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


def image_size(config: ModelConfig) -> int:
    """The square input side of a config's image tower (ModelError for non-square sizes)."""
    size = config["vision_cfg"].get("image_size", 224)
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ModelError(f"only square image sizes are supported, the config has {size}")
        size = size[0]
    return int(size)
