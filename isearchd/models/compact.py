"""Towers for TinyCLIP's "auto" models, built from the shapes of their compact checkpoints.

TinyCLIP's automatic weight inheritance prunes a ViT-B/32 CLIP structurally, and the published
checkpoint holds only what is left (facts read off the reference loader):

- the residual width is pruned: the vision tower keeps the first ``ln_pre.weight`` channels, the
  text tower the first ``positional_embedding.shape[1]``; every layer norm, projection and
  embedding is cut to that width;
- every layer keeps its own number of attention heads (``in_proj_weight`` rows / 3 / head width;
  the head width stays 64) and its own MLP width (``c_fc.weight`` rows);
- a layer whose attention or MLP was pruned away has no keys for it: that sublayer is skipped;
- q, k and v of the kept heads are stacked as ``[q heads | k heads | v heads]``, as in
  ``nn.MultiheadAttention``.

The reference builds the full ViT-B/32 with L0 masks, copies the compact tensors into it, runs it
once and slices it back down; along the way it multiplies some kept weights by sigmoid(12)
(= 0.9999939, the "on" value of its masks) and can keep one all-zero MLP neuron in a heavily
pruned layer. Neither changes an embedding by more than about 1e-5, so this module builds the
compact towers directly at their final size, from the tensors as stored (sizes: ``layers.py``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from isearchd.errors import ModelError
from isearchd.models.checkpoint import load_error_message
from isearchd.models.layers import text_plan, vision_plan
from isearchd.models.registry import ModelConfig
from isearchd.models.towers import trimmed_tokens

__all__ = ["CompactCLIP", "build_compact"]


class CompactAttention(nn.Module):
    """Multi-head self-attention whose inner width (heads x head_dim) differs from the residual width."""

    def __init__(self, width: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        inner = heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * inner))
        self.out_proj = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = out.transpose(1, 2).reshape(batch, length, self.heads * self.head_dim)
        return self.out_proj(out)


class CompactBlock(nn.Module):
    """A residual block whose attention and MLP are each optional and sized on their own."""

    def __init__(self, width: int, heads: int, head_dim: int, mlp_width: int) -> None:
        super().__init__()
        self.heads = heads
        self.mlp_width = mlp_width
        self.ln_1: nn.LayerNorm | None = None
        self.attn: CompactAttention | None = None
        self.ln_2: nn.LayerNorm | None = None
        self.mlp: nn.Sequential | None = None
        if heads:
            self.ln_1 = nn.LayerNorm(width)
            self.attn = CompactAttention(width, heads, head_dim)
        if mlp_width:
            self.ln_2 = nn.LayerNorm(width)
            self.mlp = nn.Sequential(
                OrderedDict(
                    c_fc=nn.Linear(width, mlp_width), gelu=nn.GELU(), c_proj=nn.Linear(mlp_width, width)
                )
            )

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        if self.attn is not None and self.ln_1 is not None:
            x = x + self.attn(self.ln_1(x), causal)
        if self.mlp is not None and self.ln_2 is not None:
            x = x + self.mlp(self.ln_2(x))
        return x


class CompactTransformer(nn.Module):
    def __init__(self, width: int, head_dim: int, layers: list[tuple[int, int]]) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            CompactBlock(width, heads, head_dim, mlp_width) for heads, mlp_width in layers
        )

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal)
        return x


class CompactVisionTransformer(nn.Module):
    """CLIP's ViT image tower (class token, ln_pre, blocks, ln_post on the class token, projection)."""

    def __init__(
        self, width: int, patch_size: int, grid: int, head_dim: int, layers: list[tuple[int, int]], dim: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = CompactTransformer(width, head_dim, layers)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.conv1(pixels)
        x = x.flatten(2).transpose(1, 2)  # (N, grid*grid, width)
        cls = self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        x = self.transformer(x, causal=False)
        return self.ln_post(x[:, 0]) @ self.proj


class CompactCLIP(nn.Module):
    """Compact image and text towers; ``encode_text`` runs on the batch's longest sequence."""

    def __init__(
        self,
        vision: CompactVisionTransformer,
        text_width: int,
        text_head_dim: int,
        text_layers: list[tuple[int, int]],
        vocab_size: int,
        context_length: int,
        dim: int,
    ) -> None:
        super().__init__()
        self.visual = vision
        self.token_embedding = nn.Embedding(vocab_size, text_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, text_width))
        self.transformer = CompactTransformer(text_width, text_head_dim, text_layers)
        self.ln_final = nn.LayerNorm(text_width)
        self.text_projection = nn.Parameter(torch.empty(text_width, dim))
        self.logit_scale = nn.Parameter(torch.empty(()))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)

    @property
    def trims_text(self) -> bool:
        return True

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens, eot = trimmed_tokens(tokens)
        return self.encode_text_at(tokens, eot)

    def encode_text_at(self, tokens: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text embeddings of (n, length) tokens pooled at positions ``eot`` (traceable: no .item())."""
        return self.encode_embedded_text(self.token_embedding(tokens), eot)

    def encode_embedded_text(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """The text tower after the token lookup: (n, length, width) embeddings pooled at ``eot``."""
        x = x + self.positional_embedding[: x.shape[1]]
        x = self.transformer(x, causal=True)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return x @ self.text_projection


def _build(sd: dict[str, torch.Tensor], config: ModelConfig) -> CompactCLIP:
    vision = vision_plan(sd, config)
    text = text_plan(sd, config)
    dim = int(config["embed_dim"])
    with torch.device("meta"):
        visual = CompactVisionTransformer(
            vision.width, vision.patch, vision.grid, vision.head_width, list(vision.layers), dim
        )
        return CompactCLIP(
            visual, text.width, text.head_dim, list(text.layers), text.vocab_size, text.context_length, dim
        )


def build_compact(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> CompactCLIP:
    """Compact towers holding ``state_dict`` (open_clip key names); ModelError on any mismatch.

    ``config`` is the unpruned base architecture (open_clip format): it bounds every width and
    fixes patch size, image size, context length and embedding dimension.
    """
    sd = dict(state_dict)
    if "logit_scale" not in sd:
        sd["logit_scale"] = torch.tensor(4.6052)  # ln(100); unused for embeddings
    model = _build(sd, config)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(load_error_message(exc)) from None
    return model.eval().requires_grad_(False)
