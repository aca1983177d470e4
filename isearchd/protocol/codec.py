"""Requests from JSON into their types, replies from their types into JSON, and back.

``validate_request`` turns a decoded line into the ``Request`` type the op table names for its op
(``isearchd.messages.OPS``): a missing or ``null`` field takes its default, a field of the wrong
shape is an ``InvalidRequest`` saying which field and what it must be, a line that is not a JSON
object a ``ProtocolError``. ``to_wire`` turns a reply into JSON data, ``read_result`` turns the
daemon's answer back into the reply type of the op that asked for it (a reply that does not match
is a ``ProtocolError``).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from isearchd.errors import InvalidRequest, ProtocolError
from isearchd.messages import OPS, Request
from isearchd.protocol.lines import decode_line

__all__ = ["parse_request", "read_result", "to_wire", "validate_request"]

_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "bytes": "base64 text",
}
_EXPECTED = re.compile(
    r"Expected `(?P<types>[^`]+)`(?P<detail>[^,]*?)(?:, got `(?P<got>[^`]+)`)?(?: - at `\$(?P<path>[^`]*)`)?"
)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`(?: - at `\$(?P<path>[^`]*)`)?")
_AT = re.compile(r"(?P<message>.*?) - at `\$(?P<path>[^`]*)`", re.S)


def parse_request(line: bytes | str) -> Request:
    """Decode and validate one request line."""
    return validate_request(decode_line(line))


def validate_request(obj: object) -> Request:
    """A decoded request line as its op's ``Request`` type."""
    if not isinstance(obj, dict):
        raise ProtocolError("a request must be a JSON object with an 'op' field")
    op = obj.get("op")
    if not isinstance(op, str):
        raise InvalidRequest("a request needs an 'op' string")
    spec = OPS.get(op)
    if spec is None:
        raise InvalidRequest(f"unknown op {op!r}; known ops: {', '.join(sorted(OPS))}")
    fields = {k: v for k, v in obj.items() if v is not None and k != "op"}
    try:
        request: Request = msgspec.convert(fields, spec.request)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"{op}: {explain(e)}") from None
    except InvalidRequest as e:  # a name no file system can hold (isearchd.files.names.check_name)
        raise InvalidRequest(f"{op}: {e.message}") from None
    return request


def to_wire(value: Any) -> Any:
    """A reply (a message, a list of them, a number...) as JSON data."""
    return msgspec.to_builtins(value)


def read_result(op: str, result: Any) -> Any:
    """The daemon's ``result`` for ``op`` as the op's reply type."""
    try:
        return msgspec.convert(result, OPS[op].reply)
    except msgspec.ValidationError as e:
        raise ProtocolError(f"the daemon's reply to {op!r} does not fit this client ({explain(e)})") from None


def explain(error: msgspec.ValidationError) -> str:
    """msgspec's message in the protocol's words: which field, and what it must be."""
    text = str(error)
    if m := _MISSING.fullmatch(text):
        where = _field(m["path"])
        return f"missing required field {m['field']!r}" + (f" in {where!r}" if where else "")
    if m := _EXPECTED.fullmatch(text):
        types = [t.strip() for t in m["types"].split("|") if t.strip() != "null"]
        what = " or ".join(_WORDS.get(t, t) for t in types)
        if types == ["str"] and "length >= 1" in m["detail"]:
            what = "a non-empty string"
        where = _field(m["path"])
        return f"{where!r} must be {what}" if where else f"must be {what}"
    if m := _AT.fullmatch(text):
        where = _field(m["path"])
        message = m["message"][:1].lower() + m["message"][1:]
        return f"{where}: {message}" if where else message
    return text


def _field(path: str | None) -> str:
    """``.files[0].label`` -> ``files[0].label``."""
    return (path or "").lstrip(".")
