"""What an add reports, shared by every layer: the engine fills it, the protocol carries it (the
``add`` reply, and a ``progress`` event after each committed batch), the Client and the CLI show it.
Plain data; imports nothing of ImgSearch.
"""

from __future__ import annotations

import msgspec

# How an add labels images: by absolute path (default) or by file name.
LABEL_TYPES = ("path", "name")
# The most results one search may ask for.
MAX_RESULTS = 10_000


class Progress(msgspec.Struct, frozen=True):
    """An add (or a migrate) so far: ``done`` of ``total`` files; of them ``added``, ``skipped``,
    ``failed``."""

    done: int
    total: int
    added: int
    skipped: int
    failed: int


class AddReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an add did. ``added`` counts files embedded (new or changed) and committed; ``skipped``
    counts files already present unchanged; ``failed`` lists ``(path, reason)``; ``total`` is
    their sum (carried on the wire for clients that only read it)."""

    added: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = []
    total: int = 0

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "total", self.added + self.skipped + len(self.failed))

    def merged(self, other: AddReport) -> AddReport:
        return AddReport(
            added=self.added + other.added,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
        )
