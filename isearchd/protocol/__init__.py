"""The JSON-lines protocol between ``isearchd`` and its clients: framing, validation, addresses.

One UTF-8 JSON object per line, in both directions. A client sends requests::

    {"id": 7, "op": "search", "db": "default", "text": "a red circle", "num": 10, "similarity": 0}

and gets, for each request and in order, zero or more progress events followed by exactly one
final reply (``lines``). What each op takes and answers is declared once, as types, in
``isearchd.messages`` (the op table ``OPS``); ``codec`` validates requests into those types and
encodes and decodes replies with them. Image data travels as base64 text. Bind addresses
(``bind``) are parsed here because the daemon and its clients share them.

Rules of the daemon that depend on who asks (a TCP client may not name daemon-side paths) are the
request handler's (``isearchd.daemon.handler``), not the protocol's.
"""

from isearchd.messages import OPS, Op, Request
from isearchd.protocol.bind import BindAddress, is_loopback, parse_bind
from isearchd.protocol.codec import explain, parse_request, read_result, to_wire, validate_request
from isearchd.protocol.lines import (
    ADD_CHUNK_BYTES,
    ADD_CHUNK_FILES,
    MAX_LINE_BYTES,
    LineReader,
    LineTooLong,
    b64encode,
    decode_line,
    decode_reply,
    encode,
    error_reply,
    ok_reply,
    progress_event,
    request_id,
)

PROTOCOL_VERSION = 1

__all__ = [
    "ADD_CHUNK_BYTES",
    "ADD_CHUNK_FILES",
    "MAX_LINE_BYTES",
    "OPS",
    "PROTOCOL_VERSION",
    "BindAddress",
    "LineReader",
    "LineTooLong",
    "Op",
    "Request",
    "b64encode",
    "decode_line",
    "decode_reply",
    "encode",
    "error_reply",
    "explain",
    "is_loopback",
    "ok_reply",
    "parse_bind",
    "parse_request",
    "progress_event",
    "read_result",
    "request_id",
    "to_wire",
    "validate_request",
]
