"""The 11 TinyCLIP models ImgSearch knows, as data.

Each key of the original ImgSearch README maps to one TinyCLIP architecture (an open_clip model
config in ``configs/<arch>.json``), the training-data tag of its published weights, and the
figures the TinyCLIP model zoo reports for it (shown by ``isearch model list``).

"auto" models were pruned by TinyCLIP's automatic weight inheritance: their checkpoints are
compact (every layer has its own width), so they are not built from the JSON config directly;
the config describes the unpruned base model that bounds their shapes (see ``compact.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from isearchd.config.settings import DEFAULT_MODEL
from isearchd.errors import ModelError

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "arch_config", "get_spec"]

RELEASE_URL = "https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints"


@dataclass(frozen=True)
class ModelSpec:
    """One model key: which architecture, which weights, and the zoo's published figures."""

    key: str
    arch: str  # open_clip-style architecture name, also the config file stem
    data: str  # training-data tag of the published weights
    dim: int  # embedding dimension
    url: str  # official weights (a GitHub release asset)
    file_name: str  # the release asset's file name
    acc1: float  # ImageNet-1K zero-shot top-1 accuracy, %
    macs: float  # GMACs per image-text pair
    throughput: int  # image-text pairs/s as published by TinyCLIP
    auto: bool  # compact checkpoint from automatic weight inheritance (pruned per layer)

    @property
    def is_default(self) -> bool:
        return self.key == DEFAULT_MODEL


def _spec(key: str, arch: str, data: str, acc1: float, macs: float, throughput: int) -> ModelSpec:
    file_name = f"{arch}-{data}.pt"
    return ModelSpec(
        key=key,
        arch=arch,
        data=data,
        dim=1024 if key.startswith("RN-") else 512,
        url=f"{RELEASE_URL}/{file_name}",
        file_name=file_name,
        acc1=acc1,
        macs=macs,
        throughput=throughput,
        auto="-auto-" in arch,
    )


# Order and figures as in the original README's model table.
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.key: spec
        for spec in (
            _spec("ViT-8Y", "TinyCLIP-ViT-8M-16-Text-3M", "YFCC15M", 41.1, 2.0, 4150),
            _spec("RN-19L", "TinyCLIP-ResNet-19M-Text-19M", "LAION400M", 56.4, 4.4, 3024),
            _spec("ViT-22L", "TinyCLIP-auto-ViT-22M-32-Text-10M", "LAION400M", 53.7, 1.9, 5504),
            _spec("RN-30L", "TinyCLIP-ResNet-30M-Text-29M", "LAION400M", 59.1, 6.9, 1811),
            _spec("ViT-39Y", "TinyCLIP-ViT-39M-16-Text-19M", "YFCC15M", 63.5, 9.5, 1469),
            _spec("ViT-40L", "TinyCLIP-ViT-40M-32-Text-19M", "LAION400M", 59.8, 3.5, 4641),
            _spec("ViT-45L", "TinyCLIP-auto-ViT-45M-32-Text-18M", "LAION400M", 61.4, 3.7, 3682),
            _spec("ViT-45LY", "TinyCLIP-auto-ViT-45M-32-Text-18M", "LAIONYFCC400M", 62.7, 1.9, 3685),
            _spec("ViT-61L", "TinyCLIP-ViT-61M-32-Text-29M", "LAION400M", 62.4, 5.3, 3191),
            _spec("ViT-63L", "TinyCLIP-auto-ViT-63M-32-Text-31M", "LAION400M", 63.9, 5.6, 2905),
            _spec("ViT-63LY", "TinyCLIP-auto-ViT-63M-32-Text-31M", "LAIONYFCC400M", 64.5, 5.6, 2909),
        )
    }
)


def get_spec(key: str) -> ModelSpec:
    """The spec for a model key (exact, else case-insensitive match); ModelError if unknown."""
    spec = MODELS.get(key)
    if spec is not None:
        return spec
    for name, candidate in MODELS.items():
        if name.lower() == key.lower():
            return candidate
    raise ModelError(
        f"unknown model {key!r}; choose one of {', '.join(MODELS)} "
        "or give the path of a .pt checkpoint with its .json config beside it"
    )


# An open_clip model config as its JSON file has it (``embed_dim``, ``vision_cfg``, ``text_cfg``),
# handed on to open_clip's constructors as keyword arguments.
ModelConfig = dict[str, Any]


def arch_config(arch: str) -> ModelConfig:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) of an architecture."""
    resource = resources.files("isearchd.models").joinpath("configs", f"{arch}.json")
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"no architecture config for {arch!r} in the package") from None
    config: ModelConfig = json.loads(text)
    return config
