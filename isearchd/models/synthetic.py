"""Random checkpoints in TinyCLIP's official file layouts, for tests and benchmarks.

The real weights cannot be downloaded on every machine, so parity tests, import checks and load
benchmarks use checkpoints with the official structure and random values:

- manual architectures: the open_clip tensors of the architecture, saved as
  ``{"state_dict": {"_image_encoder.module.visual.…", "_text_encoder.module.…",
  "_logit_scale.module.logit_scale"}}``;
- auto architectures: compact tensors (pruned residual width, per-layer heads and MLP widths,
  one layer without attention and one without MLP in each tower), saved as
  ``{"state_dict": {"image_encoder_without_ddp.visual.…", "text_encoder_without_ddp.…",
  "_logit_scale.module.module.logit_scale"}}``.

The auto shapes are sized so the towers land near the sizes in the architecture's name (for
ViT-45M-32-Text-18M: about 45M vision parameters and 18M text-transformer parameters), so load
times and parameter counts measured on them are representative. Values are drawn with sensible
scales (unit-variance activations, layer norms near 1) so embeddings are well conditioned.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from open_clip.model import CLIP

from isearchd.models.registry import ModelConfig, arch_config, get_spec

__all__ = [
    "AutoPlan",
    "auto_plan",
    "compact_shapes",
    "official_checkpoint",
    "random_tensors",
    "write_official_checkpoint",
]

HEAD_DIM = 64


@dataclass(frozen=True)
class AutoPlan:
    """Shapes of a compact (pruned) model: residual widths and (heads, MLP width) per layer."""

    vision_width: int
    vision_layers: tuple[tuple[int, int], ...]
    text_width: int
    text_layers: tuple[tuple[int, int], ...]


def _block_params(width: int, heads: int, mlp: int) -> int:
    inner = heads * HEAD_DIM
    attn = (4 * width * inner + 3 * inner + width + 2 * width) if heads else 0
    ffn = (2 * width * mlp + mlp + width + 2 * width) if mlp else 0
    return attn + ffn


def _tower_layers(
    width: int, max_heads: int, max_mlp: int, depth: int, target: float, no_attn: int, no_mlp: int
) -> tuple[tuple[int, int], ...]:
    """Per-layer (heads, mlp) with varied widths whose block parameters total about ``target``."""
    # Fixed, irregular per-layer profiles in (0, 1]; scaled by f to hit the target.
    head_profile = [0.35 + 0.65 * ((i * 5) % depth) / max(depth - 1, 1) for i in range(depth)]
    mlp_profile = [0.30 + 0.70 * ((i * 7 + 3) % depth) / max(depth - 1, 1) for i in range(depth)]

    def layers(f: float) -> tuple[tuple[int, int], ...]:
        out = []
        for i in range(depth):
            heads = 0 if i == no_attn else max(1, min(max_heads, round(f * head_profile[i] * max_heads)))
            # odd MLP widths on purpose: nothing may assume multiples of anything
            mlp = 0 if i == no_mlp else max(1, min(max_mlp, int(f * mlp_profile[i] * max_mlp) | 1))
            out.append((heads, mlp))
        return tuple(out)

    lo, hi = 0.01, 2.0
    for _ in range(40):
        mid = (lo + hi) / 2
        total = sum(_block_params(width, h, m) for h, m in layers(mid))
        lo, hi = (mid, hi) if total < target else (lo, mid)
    return layers(lo)


def _residual_width(base: int, depth: int, target: float) -> int:
    """The smallest pruned width (multiple of 32, from 5/6 of ``base`` up to ``base - 32``) whose
    unpruned blocks hold ``target`` parameters at no more than 80 % occupancy."""
    width = base * 5 // 6 // 32 * 32
    while width < base - 32 and 0.8 * depth * _block_params(width, base // HEAD_DIM, 4 * base) < target:
        width += 32
    return width


def auto_plan(arch: str) -> AutoPlan:
    """Compact shapes for an auto architecture, sized after the parameter counts in its name."""
    match = re.search(r"ViT-(\d+)M-\d+-Text-(\d+)M", arch)
    if match is None:
        raise ValueError(f"not an auto TinyCLIP architecture name: {arch}")
    vision_target, text_target = (int(g) * 1_000_000 for g in match.groups())
    config = arch_config(arch)
    vcfg, tcfg = config["vision_cfg"], config["text_cfg"]
    dim = int(config["embed_dim"])
    patch = int(vcfg["patch_size"])
    grid = int(vcfg["image_size"]) // patch
    vision_fixed = int(vcfg["width"]) * (3 * patch * patch + grid * grid + 1 + 1 + 4 + dim)
    # Prune the residual stream too (768 -> 640 at most), but keep room for per-layer variety.
    vision_width = _residual_width(int(vcfg["width"]), int(vcfg["layers"]), vision_target - vision_fixed)
    text_width = _residual_width(int(tcfg["width"]), int(tcfg["layers"]), text_target)
    vision_layers = _tower_layers(
        vision_width,
        int(vcfg["width"]) // HEAD_DIM,
        4 * int(vcfg["width"]),
        int(vcfg["layers"]),
        vision_target - vision_fixed,
        no_attn=3,
        no_mlp=8,
    )
    text_layers = _tower_layers(
        text_width,
        int(tcfg["heads"]),
        4 * int(tcfg["width"]),
        int(tcfg["layers"]),
        text_target,
        no_attn=5,
        no_mlp=10,
    )
    return AutoPlan(vision_width, vision_layers, text_width, text_layers)


def compact_shapes(config: ModelConfig, plan: AutoPlan) -> dict[str, tuple[int, ...]]:
    """open_clip-named tensor shapes of a compact model: base ``config`` pruned as ``plan`` says."""
    vcfg, tcfg = config["vision_cfg"], config["text_cfg"]
    dim = int(config["embed_dim"])
    patch = int(vcfg["patch_size"])
    grid = int(vcfg["image_size"]) // patch
    vw, tw = plan.vision_width, plan.text_width
    shapes: dict[str, tuple[int, ...]] = {
        "visual.class_embedding": (vw,),
        "visual.positional_embedding": (grid * grid + 1, vw),
        "visual.proj": (vw, dim),
        "visual.conv1.weight": (vw, 3, patch, patch),
        "visual.ln_pre.weight": (vw,),
        "visual.ln_pre.bias": (vw,),
        "visual.ln_post.weight": (vw,),
        "visual.ln_post.bias": (vw,),
        "positional_embedding": (int(tcfg["context_length"]), tw),
        "text_projection": (tw, dim),
        "token_embedding.weight": (int(tcfg["vocab_size"]), tw),
        "ln_final.weight": (tw,),
        "ln_final.bias": (tw,),
        "logit_scale": (),
    }
    for prefix, width, layers in (("visual.", vw, plan.vision_layers), ("", tw, plan.text_layers)):
        for i, (heads, mlp) in enumerate(layers):
            block = f"{prefix}transformer.resblocks.{i}."
            inner = heads * HEAD_DIM
            if heads:
                shapes |= {
                    block + "ln_1.weight": (width,),
                    block + "ln_1.bias": (width,),
                    block + "attn.in_proj_weight": (3 * inner, width),
                    block + "attn.in_proj_bias": (3 * inner,),
                    block + "attn.out_proj.weight": (width, inner),
                    block + "attn.out_proj.bias": (width,),
                }
            if mlp:
                shapes |= {
                    block + "ln_2.weight": (width,),
                    block + "ln_2.bias": (width,),
                    block + "mlp.c_fc.weight": (mlp, width),
                    block + "mlp.c_fc.bias": (mlp,),
                    block + "mlp.c_proj.weight": (width, mlp),
                    block + "mlp.c_proj.bias": (width,),
                }
    return shapes


def _manual_shapes(arch: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    with torch.device("meta"):
        clip = CLIP(**arch_config(arch))
    return {name: (tuple(t.shape), t.dtype) for name, t in clip.state_dict().items()}


def _random(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "logit_scale":
        return torch.tensor(math.log(100.0))
    if leaf == "running_var":
        return torch.rand(shape, generator=gen) + 0.5
    noise = torch.randn(shape, generator=gen)
    if leaf == "running_mean":
        return 0.1 * noise
    if len(shape) == 1:
        if leaf == "weight":  # layer / batch norm scale
            return 1.0 + 0.1 * noise
        if leaf == "bias":
            return 0.02 * noise
        return 0.1 * noise  # class embedding
    if leaf in ("positional_embedding",) or name.endswith("token_embedding.weight"):
        return 0.1 * noise
    if leaf in ("proj", "text_projection"):
        return noise / math.sqrt(shape[0])  # (width, dim): x @ proj
    fan_in = math.prod(shape[1:])
    return noise / math.sqrt(fan_in)


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 tensors of the given shapes, scaled by role (see module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    return {name: _random(name, shape, gen).float() for name, shape in shapes.items()}


def official_checkpoint(key_or_arch: str, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A random checkpoint object (``{"state_dict": ...}``) in the official layout of a key or arch."""
    arch = key_or_arch if key_or_arch.startswith("TinyCLIP-") else get_spec(key_or_arch).arch
    if "-auto-" in arch:
        tensors = random_tensors(compact_shapes(arch_config(arch), auto_plan(arch)), seed)
        prefixes = ("image_encoder_without_ddp.", "text_encoder_without_ddp.", "_logit_scale.module.module.")
    else:
        gen = torch.Generator().manual_seed(seed)
        tensors = {}
        for name, (shape, dtype) in _manual_shapes(arch).items():
            if dtype.is_floating_point:
                tensors[name] = _random(name, shape, gen).float()
            else:
                tensors[name] = torch.zeros(shape, dtype=dtype)  # BatchNorm's num_batches_tracked
        prefixes = ("_image_encoder.module.", "_text_encoder.module.", "_logit_scale.module.")
    image_prefix, text_prefix, scale_prefix = prefixes
    state_dict: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.startswith("visual."):
            state_dict[image_prefix + name] = tensor
        elif name == "logit_scale":
            state_dict[scale_prefix + name] = tensor
        else:
            state_dict[text_prefix + name] = tensor
    return {"state_dict": state_dict}


def write_official_checkpoint(key_or_arch: str, path: Path, seed: int = 0) -> Path:
    """Save ``official_checkpoint(key_or_arch, seed)`` to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(official_checkpoint(key_or_arch, seed), path)
    return path
