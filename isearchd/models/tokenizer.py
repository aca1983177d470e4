"""CLIP's byte-level BPE tokenizer without torch: the ids ``open_clip.tokenize`` gives, as numpy.

The ONNX Runtime path must not import torch (or open_clip, which imports it), so the daemon
tokenizes with this module. It follows CLIP's published algorithm: clean the text (ftfy, HTML
unescape, collapse whitespace, lower-case), split it with CLIP's regular expression, map each
piece's UTF-8 bytes to printable characters, merge by BPE rank, then frame the ids with the
start/end-of-text tokens and truncate to the context (the last kept id becomes end-of-text).
``tests/unit/test_onnx.py`` checks the ids against open_clip's tokenizer.

The merge table is CLIP's ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI, MIT licence; the file
open_clip ships), kept in this package (``isearchd/models/vocab/``, with its notice) so that an
install without torch and open_clip tokenizes too. ``tests/unit/test_onnx.py`` checks it is the
same file as open_clip's, byte for byte.
"""

from __future__ import annotations

import gzip
import html
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import regex  # type: ignore[import-untyped]

from isearchd.errors import ModelError

__all__ = ["BPE_FILE_NAME", "ClipTokenizer", "bpe_vocab_path", "get_tokenizer"]

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
# CLIP's vocabulary: 256 byte symbols, the same with an end-of-word mark, 48,894 merges, 2 specials.
_NUM_MERGES = 49152 - 256 - 2
_SOT = "<start_of_text>"
_EOT = "<end_of_text>"
_WORD_END = "</w>"
# Words repeat a lot (queries, captions): remember this many BPE results per tokenizer.
_BPE_CACHE_SIZE = 10_000


def bpe_vocab_path() -> Path:
    """CLIP's BPE merge file, as this package ships it."""
    path = Path(__file__).with_name("vocab") / BPE_FILE_NAME
    if not path.is_file():
        raise ModelError(
            f"CLIP's tokenizer vocabulary {path} is missing: the installation is incomplete; "
            "reinstall ImgSearch (`pip install --force-reinstall isearchd`)"
        )
    return path


def _byte_symbols() -> dict[int, str]:
    """The printable character standing for each byte (CLIP's reversible byte mapping).

    Printable Latin-1 bytes stand for themselves, the others for 256, 257, ...; the dict's
    order (printable bytes first) is the order of the first 256 vocabulary ids.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols


def _clean(text: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Text to CLIP token ids. Thread-safe; build one with ``get_tokenizer()``."""

    def __init__(self, vocab_path: Path | None = None) -> None:
        path = vocab_path or bpe_vocab_path()
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fp:
                lines = fp.read().split("\n")
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise ModelError(f"{path}: unreadable CLIP tokenizer vocabulary ({exc})") from None
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ModelError(f"{path}: not CLIP's BPE vocabulary ({len(merges)} merges)")
        symbols = _byte_symbols()
        self._byte_symbols = [symbols[b] for b in range(256)]
        vocab = [*symbols.values(), *(s + _WORD_END for s in symbols.values())]
        vocab += ["".join(m) for m in merges]
        vocab += [_SOT, _EOT]
        self._ids = {token: i for i, token in enumerate(vocab)}
        self._ranks = {(m[0], m[1]): i for i, m in enumerate(merges)}
        self.sot_id = self._ids[_SOT]
        self.eot_id = self._ids[_EOT]
        self._pattern = regex.compile(
            rf"{_SOT}|{_EOT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+",
            regex.IGNORECASE,
        )
        self._cache: dict[str, tuple[int, ...]] = {}
        self._cache_lock = threading.Lock()

    def _bpe(self, piece: str) -> tuple[int, ...]:
        """Ids of one pre-split piece (already mapped to byte symbols)."""
        with self._cache_lock:
            cached = self._cache.get(piece)
        if cached is not None:
            return cached
        word = [*piece[:-1], piece[-1] + _WORD_END]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self._ranks.get(p, _NUM_MERGES))
            if best not in self._ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = tuple(self._ids[symbol] for symbol in word)
        with self._cache_lock:
            if len(self._cache) >= _BPE_CACHE_SIZE:
                self._cache.clear()
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, without the start/end framing."""
        ids: list[int] = []
        for piece in self._pattern.findall(_clean(text)):
            if piece in (_SOT, _EOT):
                ids.append(self._ids[piece])
                continue
            ids.extend(self._bpe("".join(self._byte_symbols[b] for b in piece.encode("utf-8"))))
        return ids

    def __call__(self, texts: Sequence[str], context_length: int = 77) -> np.ndarray:
        """(len(texts), context_length) int64 ids, zero-padded; too long texts end in end-of-text."""
        out = np.zeros((len(texts), context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out


@lru_cache(maxsize=1)
def get_tokenizer() -> ClipTokenizer:
    """The shared tokenizer (building it reads and indexes ~49k merges: ~0.1 s)."""
    return ClipTokenizer()
