"""Reading checkpoint files and mapping their keys onto open_clip's names.

TinyCLIP publishes three layouts (facts read off the reference loader):

- manual models: ``{"state_dict": {...}}`` with keys ``_image_encoder.module.<open_clip visual key>``,
  ``_text_encoder.module.<open_clip text key>`` and ``_logit_scale.module.logit_scale``;
- auto (pruned) models: keys ``image_encoder_without_ddp.…``, ``text_encoder_without_ddp.…`` and
  ``_logit_scale.module.module.logit_scale``, with compact per-layer shapes;
- plain open_clip state dicts (``visual.…``, ``transformer.…``, ``logit_scale``), optionally
  with a ``module.`` prefix left by DistributedDataParallel.

``read_state_dict`` turns any of them into plain open_clip keys and float32 numpy arrays and says
which layout it found. Files are read by ``torchzip`` (no torch, no torch unpickler: an allow-list
of what a state dict holds); the torch loader wraps the arrays with ``torch.from_numpy``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from isearchd.errors import ModelError
from isearchd.models.torchzip import read_checkpoint

__all__ = ["Layout", "load_error_message", "normalise_keys", "read_state_dict"]

log = logging.getLogger(__name__)

Layout = Literal["manual", "auto", "open_clip"]
Array = npt.NDArray[Any]
T = TypeVar("T")

# TinyCLIP's wrapper modules; what follows them is the open_clip name ("visual.…" for images).
_TOWER_PREFIXES = frozenset(
    {
        "_image_encoder",
        "image_encoder_without_ddp",
        "_text_encoder",
        "text_encoder_without_ddp",
        "_logit_scale",
    }
)
# Training-time state that inference never uses (TinyCLIP's L0 pruning masks).
_IGNORED_PARTS = frozenset({"l0_module"})


def normalise_keys(state_dict: Mapping[str, T]) -> tuple[dict[str, T], Layout]:
    """Map a checkpoint's keys onto open_clip ``CLIP`` names; return them and the layout found."""
    layout: Layout = "open_clip"
    out: dict[str, T] = {}
    for key, value in state_dict.items():
        # No open_clip CLIP key has a "module" part: every one comes from a DDP wrapper.
        parts = [p for p in key.split(".") if p != "module"]
        if not parts:
            continue
        if parts[0] in _TOWER_PREFIXES:
            if parts[0].endswith("_without_ddp"):
                layout = "auto"
            elif layout == "open_clip":
                layout = "manual"
            parts = parts[1:]
        if not parts or _IGNORED_PARTS.intersection(parts):
            continue
        name = ".".join(parts)
        if name in out:
            raise ModelError(f"checkpoint has two tensors for {name!r}")
        out[name] = value
    return out, layout


def read_state_dict(path: Path) -> tuple[dict[str, Array], Layout]:
    """Read a checkpoint file as open_clip-named float32 arrays; ModelError names file and reason."""
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"{path}: not a model checkpoint (expected a dict of tensors)")
    tensors: dict[str, Array] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ModelError(f"{path}: not a model checkpoint (non-string key {key!r})")
        if isinstance(value, np.ndarray):
            # as torch's .float(): half and double become float32, float32 stays as it is
            floating = value.dtype.kind == "f" and value.dtype != np.float32
            tensors[key] = value.astype(np.float32) if floating else value
        else:
            log.debug("%s: ignoring non-tensor entry %r", path, key)
    if not tensors:
        raise ModelError(f"{path}: not a model checkpoint (it holds no tensors)")
    try:
        state_dict, layout = normalise_keys(tensors)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc.message}") from None
    return state_dict, layout


def load_error_message(exc: RuntimeError) -> str:
    """torch's ``load_state_dict`` complaint, shortened to its first few findings."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = "; ".join(lines[1:4]) if len(lines) > 1 else (lines[0] if lines else "")
    if len(detail) > 600:
        detail = detail[:600] + " …"
    return f"tensors do not match the architecture: {detail}"
