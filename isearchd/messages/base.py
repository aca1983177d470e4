"""The pieces every message is built from: the base class, names, and an image reference."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from isearchd.errors import BadField
from isearchd.files.names import check_name

__all__ = ["Absolute", "ImageRef", "JsonObject", "Message", "Name", "NonEmpty", "daemon_path"]

# A string that may not be empty (a query text, a label, a database name).
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

# A JSON object where it crosses a boundary untyped: a protocol line before it is validated or
# after it is encoded, a file header, a TOML table, a vector store's payload.
JsonObject = dict[str, Any]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """A request or reply: frozen, fields by keyword. Fields a newer peer sends are ignored."""


def daemon_path(text: str, what: str) -> str:
    """A path on the daemon's machine: a valid name, and absolute (the daemon does not share the
    client's working directory)."""
    check_name(text, what)
    if not text.startswith("/"):
        raise BadField(f"paths must be absolute (the daemon does not share your cwd): {text}")
    return text


# Annotations used in the request types: what the field holds (``Name``: a file or label name,
# checked in ``__post_init__``; ``Absolute``: a daemon-side path, also checked there).
Name = NonEmpty
Absolute = NonEmpty


class ImageRef(Message, omit_defaults=True, frozen=True, kw_only=True):
    """An image named by a daemon-side ``path`` (local clients only) or carried as ``data`` (bytes,
    base64 on the wire); ``name`` only labels it in error messages."""

    path: Absolute | None = None
    data: bytes | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise BadField("needs exactly one of 'path' or 'data'")
        if self.path is not None:
            daemon_path(self.path, "'path'")

    @property
    def display(self) -> str:
        """How errors name this image."""
        return self.path or self.name or "image data"

    @property
    def source(self) -> str | bytes:
        """What the engine reads: the path, or the bytes."""
        if self.data is not None:
            return self.data
        assert self.path is not None  # __post_init__: exactly one of the two
        return self.path
