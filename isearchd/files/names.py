"""File names as text: any name the file system allows, stored, carried and shown without loss.

POSIX file names are bytes. Python turns the bytes of a name that is not valid UTF-8 into a
``str`` whose undecodable bytes are lone surrogates ``\\udc80``-``\\udcff`` (the ``surrogateescape``
convention of ``os.fsdecode``); ``open()``, ``os.stat()`` and ``subprocess`` turn them back into
the same bytes. ImgSearch keeps that ``str`` everywhere and converts only at three edges:

- SQLite (``to_db``/``from_db``): labels and paths are stored as the exact bytes of the name
  (a BLOB), so every name round-trips and a folder's rows form one byte range.
- JSON (``json_line``): a lone surrogate is written as the JSON escape ``\\udcXX``, so a line stays
  valid UTF-8 and ``json.loads`` gives back the same ``str`` (``os.fsencode`` then gives the bytes).
- A terminal (``shown``): a name that is not plain printable text is shown in the shell's
  ``$'...'`` quoting (``$'/photos/caf\\xe9\\n.jpg'``): one line, unambiguous (a path shown
  plainly starts with ``/``), and pasting it into a shell names the same file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from isearchd.errors import InvalidRequest

# surrogates that os.fsdecode can produce (escaped bytes 0x80-0xff)
_ESCAPED = re.compile("[\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def to_db(text: str) -> bytes:
    """The exact bytes of a name, as stored in the catalog."""
    return text.encode("utf-8", "surrogateescape")


def from_db(value: bytes | str) -> str:
    """A stored name back as ``str`` (``os.fsdecode`` semantics; older rows may be TEXT)."""
    if isinstance(value, str):
        return value
    return bytes(value).decode("utf-8", "surrogateescape")


def check_name(text: str, what: str) -> str:
    """``text`` if it is a name a file system can have; ``InvalidRequest`` otherwise.

    Lone surrogates other than escaped bytes (a client's ``"\\ud800"``) and NUL name no file.
    """
    if "\x00" in text:
        raise InvalidRequest(f"{what}: a file name cannot contain a NUL character")
    if _SURROGATE.search(_ESCAPED.sub("", text)):
        raise InvalidRequest(f"{what}: {text!r} contains a lone UTF-16 surrogate that names no file")
    return text


def json_line(obj: Any) -> str:
    """``obj`` as one line of compact JSON that is valid UTF-8 whatever names it holds."""
    return json_safe(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def json_safe(serialized: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` made encodable as UTF-8.

    Non-ASCII text stays readable; lone surrogates become ``\\udcXX`` escapes (inside a JSON
    string a surrogate can only come from a ``str``, and ``json.dumps`` has already escaped any
    backslash before it, so the escape is read back as that surrogate).
    """
    if _SURROGATE.search(serialized) is None:
        return serialized
    return serialized.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(message: str) -> str:
    """A message for a terminal: bytes that are not UTF-8 as ``\\xHH``, control characters escaped."""
    if message.isprintable() and _SURROGATE.search(message) is None:
        return message
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in message)


_SHELL_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e"}


def shown(text: str) -> str:
    """``text`` for a terminal: as it is when plain printable text, else in ``$'...'`` quoting."""
    if text.isprintable() and not _SURROGATE.search(text):
        return text
    return "$'" + "".join(_escape(ch) for ch in text) + "'"


def _escape(ch: str) -> str:
    """One character in the shell's ``$'...'`` notation (itself when printable and unambiguous)."""
    code = ord(ch)
    if ch in _SHELL_ESCAPES:
        return _SHELL_ESCAPES[ch]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if ch.isprintable():
        return ch
    if code < 0x80:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
