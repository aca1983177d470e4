"""The network behind a ``Model``: image and text towers with one small interface.

``Towers`` is what ``Model`` runs: ``encode_image(pixels)`` and ``encode_text(tokens)``, both
returning unnormalised float32 embeddings. Two implementations:

- ``OpenClipTowers`` wraps an open_clip ``CLIP`` (the standard TinyCLIP models and custom
  checkpoints with an open_clip config);
- ``CompactCLIP`` (``compact.py``) holds the per-layer pruned towers of the "auto" models.

Both run the text tower on the batch's longest sequence (up to its end-of-text token) instead of
the full 77-token context. CLIP's text encoder is causal and pools at the end-of-text token, so
positions after it never influence the result: the output is the same, the work is 3-4x less
for typical queries (``tests/unit/test_models.py`` checks the equality).
"""

from __future__ import annotations

from typing import Protocol

import torch
from open_clip.model import CLIP
from torch import nn

__all__ = ["OpenClipTowers", "Towers", "causal_mask", "trimmed_tokens"]


class Towers(Protocol):
    """The two encoders a ``Model`` runs (unnormalised outputs)."""

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor: ...


def trimmed_tokens(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token batch after its last end-of-text token; also return each row's EOT position.

    The end-of-text token has the highest id of CLIP's vocabulary, so ``argmax`` finds it (the
    same rule open_clip and TinyCLIP use to pool).
    """
    eot = tokens.argmax(dim=-1)
    length = int(eot.max().item()) + 1 if tokens.shape[0] else 1
    return tokens[:, :length], eot


def causal_mask(length: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive causal attention mask (-inf above the diagonal), as open_clip builds it."""
    return torch.full((length, length), float("-inf"), device=device, dtype=dtype).triu_(1)


class OpenClipTowers(nn.Module):
    """An open_clip ``CLIP`` with a text path that skips the padding positions."""

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        self.clip = clip
        # Trimming is exact only for open_clip's default text head: causal mask + argmax pooling.
        self._trim = clip.text_pool_type == "argmax" and clip.attn_mask is not None

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.clip.encode_image(pixels)
        return out

    @property
    def trims_text(self) -> bool:
        """Whether ``encode_text_at`` is exact on a batch cut after its last end-of-text token."""
        return self._trim

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self._trim:
            out: torch.Tensor = self.clip.encode_text(tokens)
            return out
        tokens, eot = trimmed_tokens(tokens)
        return self.encode_text_at(tokens, eot)

    def encode_text_at(self, tokens: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text embeddings of (n, length) tokens pooled at positions ``eot`` (traceable: no .item())."""
        if not self._trim:
            out: torch.Tensor = self.clip.encode_text(tokens)
            return out
        return self.encode_embedded_text(self.clip.token_embedding(tokens), eot)

    def encode_embedded_text(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """The text tower after the token lookup: (n, length, width) embeddings pooled at ``eot``."""
        clip = self.clip
        length = x.shape[1]
        x = x + clip.positional_embedding[:length]
        x = clip.transformer(x, attn_mask=causal_mask(length, x.device, x.dtype))
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        projection = clip.text_projection
        if isinstance(projection, nn.Linear):
            return projection(x)
        if projection is not None:
            x = x @ projection
        return x
