"""What an add reports, shared by every layer: the engine fills it, the protocol carries it, the
Client and the CLI show it. Plain data; imports nothing of ImgSearch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How an add labels images: by absolute path (default) or by file name.
LABEL_TYPES = ("path", "name")
# The most results one search may ask for.
MAX_RESULTS = 10_000


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    added: int
    skipped: int
    failed: int

    def to_dict(self) -> dict[str, int]:
        return {
            "done": self.done,
            "total": self.total,
            "added": self.added,
            "skipped": self.skipped,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class AddReport:
    """What an add did. ``added`` counts files embedded (new or changed) and committed; ``skipped``
    counts files already present unchanged; ``failed`` lists ``(path, reason)``."""

    added: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.added + self.skipped + len(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "skipped": self.skipped,
            "failed": [[p, r] for p, r in self.failed],
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AddReport:
        return cls(
            added=int(d.get("added", 0)),
            skipped=int(d.get("skipped", 0)),
            failed=[(str(p), str(r)) for p, r in d.get("failed", [])],
        )

    def merged(self, other: AddReport) -> AddReport:
        return AddReport(self.added + other.added, self.skipped + other.skipped, self.failed + other.failed)
