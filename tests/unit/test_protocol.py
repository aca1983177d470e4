"""The JSON-lines protocol: request validation, line framing, bind addresses, message shapes."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from isearchd.errors import InvalidRequest, ProtocolError
from isearchd.protocol import (
    MAX_LINE_BYTES,
    OPS,
    LineReader,
    LineTooLong,
    b64encode,
    encode,
    error_reply,
    is_loopback,
    ok_reply,
    parse_bind,
    parse_file_stats,
    parse_image_source,
    parse_request,
    progress_event,
    request_id,
)
from isearchd.reports import AddReport


def test_request_defaults_are_filled_in() -> None:
    req = parse_request(b'{"id": 3, "op": "search", "text": "a red circle"}')
    assert req.id == 3
    assert req.op == "search"
    assert req.args == {
        "db": "default",
        "text": "a red circle",
        "image": None,
        "like": None,
        "num": 10,
        "similarity": 0,
        "after": None,
        "before": None,
        "within": (),
        "place": None,
        "types": (),
        "sort": "similarity",
        "plus": (),
        "minus": (),
    }


def test_every_documented_op_is_known() -> None:
    for op in ("hello", "status", "add", "search", "compare", "list_dbs", "db_info", "clear_db", "shutdown"):
        assert op in OPS


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"id": 1, "op": "fly"}', "unknown op 'fly'"),
        (b'{"id": 1}', "needs an 'op'"),
        (b'{"id": 1, "op": 5}', "needs an 'op'"),
        (b'{"id": 1, "op": "search", "text": "x", "num": "5"}', "'num' must be an integer"),
        (b'{"id": 1, "op": "search", "text": "x", "num": 2.5}', "'num' must be an integer"),
        (b'{"id": 1, "op": "search", "text": "x", "num": true}', "'num' must be an integer"),
        (b'{"id": 1, "op": "search", "text": 7}', "'text' must be a string"),
        (b'{"id": 1, "op": "add", "paths": "/x"}', "'paths' must be a list"),
        (b'{"id": 1, "op": "compare", "a": {"path": "/x"}}', "missing required field 'b'"),
        (b'{"id": [1], "op": "hello"}', "'id' must be"),
        (b'{"id": 1, "op": "hello", "token": 5}', "'token' must be a string"),
    ],
)
def test_invalid_requests_are_rejected_with_a_clear_message(line: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")) as ei:
        parse_request(line)
    assert ei.value.code == "invalid_request"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"hello"', "must be a JSON object"),
    ],
)
def test_malformed_lines_are_protocol_errors(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as ei:
        parse_request(line)
    assert ei.value.code == "protocol_error"


def test_oversized_line_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="too long"):
        parse_request(b" " * (MAX_LINE_BYTES + 1))


def test_similarity_accepts_int_and_float() -> None:
    assert parse_request('{"op": "search", "text": "x", "similarity": 80}').args["similarity"] == 80
    assert parse_request('{"op": "search", "text": "x", "similarity": 72.5}').args["similarity"] == 72.5


def test_request_id_survives_a_rejected_request() -> None:
    assert request_id({"id": 9, "op": "nope"}) == 9
    assert request_id({"id": "abc"}) == "abc"
    assert request_id({"id": True}) is None
    assert request_id([1]) is None


def test_replies_are_single_json_lines() -> None:
    line = encode(ok_reply(4, [{"label": "rött äpple.jpg", "similarity": 92.3}]))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "id": 4,
        "ok": True,
        "result": [{"label": "rött äpple.jpg", "similarity": 92.3}],
    }
    err = json.loads(encode(error_reply(5, InvalidRequest("bad"))))
    assert err == {"id": 5, "ok": False, "error": {"code": "invalid_request", "message": "bad"}}
    ev = json.loads(encode(progress_event(6, done=1, total=2)))
    assert ev == {"id": 6, "event": "progress", "done": 1, "total": 2}


def test_add_report_round_trip() -> None:
    r = AddReport(added=3, skipped=2, failed=[("/a/b.jpg", "not an image")])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["total"] == 6
    assert AddReport.from_dict(d) == r
    assert r.merged(AddReport(added=1)).added == 4


def test_image_sources() -> None:
    assert parse_image_source({"path": "/x.jpg"}, "q").path == "/x.jpg"
    src = parse_image_source({"data": b64encode(b"\x89PNG"), "name": "x.png"}, "q")
    assert src.data == b"\x89PNG" and src.display == "x.png"
    with pytest.raises(InvalidRequest, match="exactly one"):
        parse_image_source({"path": "/x", "data": "AAAA"}, "q")
    with pytest.raises(InvalidRequest, match="exactly one"):
        parse_image_source({}, "q")
    with pytest.raises(InvalidRequest, match="not valid base64"):
        parse_image_source({"data": "***"}, "q")
    with pytest.raises(InvalidRequest, match="must be an object"):
        parse_image_source("/x.jpg", "q")


def test_parse_bind() -> None:
    tcp = parse_bind("127.0.0.1:8080")
    assert tcp.is_tcp and tcp.host == "127.0.0.1" and tcp.port == 8080 and str(tcp) == "127.0.0.1:8080"
    v6 = parse_bind("[::1]:9000")
    assert v6.host == "::1" and v6.port == 9000 and str(v6) == "[::1]:9000"
    assert parse_bind("localhost:7000").host == "localhost"
    assert parse_bind("0.0.0.0:7000").host == "0.0.0.0"
    unix = parse_bind("~/.isearch/isearch.sock")
    assert not unix.is_tcp and unix.path is not None and unix.path.startswith("/")
    assert unix.path.endswith("/.isearch/isearch.sock") and "~" not in unix.path
    rel = parse_bind("./isearch.sock")
    assert rel.path is not None and rel.path.startswith("/")
    assert parse_bind("/tmp/a:1/s.sock").path == "/tmp/a:1/s.sock"
    with pytest.raises(InvalidRequest, match="bad port"):
        parse_bind("127.0.0.1:70000")
    with pytest.raises(InvalidRequest):
        parse_bind("")


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    return a, b


def test_line_reader_splits_lines_and_reports_eof() -> None:
    a, b = _pair()
    with a, b:
        b.sendall(b'{"op":"hello"}\n\n{"op":"status"}\npartial')
        b.shutdown(socket.SHUT_WR)
        r = LineReader(a, max_line=1024)
        assert r.readline() == b'{"op":"hello"}'
        assert r.readline() == b""
        assert r.readline() == b'{"op":"status"}'
        assert r.readline() == b"partial"
        assert r.readline() is None


def test_line_reader_drops_an_oversized_line_and_stays_in_sync() -> None:
    a, b = _pair()
    big = b"x" * 300_000  # spans many recv() calls

    def writer() -> None:
        b.sendall(b'{"op":"hello"}\n' + big + b"\n" + b'{"op":"status"}\n')
        b.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    with a, b:
        r = LineReader(a, max_line=1000)
        assert r.readline() == b'{"op":"hello"}'
        with pytest.raises(LineTooLong, match="300000 bytes"):
            r.readline()
        assert r.readline() == b'{"op":"status"}'
        assert r.readline() is None
        t.join()


def test_unchanged_file_stats_are_validated() -> None:
    assert parse_file_stats([{"label": "a.jpg", "size": 3, "mtime_ns": 7}]) == [("a.jpg", 3, 7)]
    bad_items = [
        "a.jpg",
        {"label": "", "size": 1, "mtime_ns": 1},
        {"label": "a", "size": -1, "mtime_ns": 1},
        {"label": "a", "size": 1, "mtime_ns": True},
        {"label": "a", "size": "1", "mtime_ns": 1},
    ]
    for bad in bad_items:
        with pytest.raises(InvalidRequest, match="unchanged: files"):
            parse_file_stats([bad])


def test_no_operation_has_a_field_named_like_the_envelope() -> None:
    """ "id", "op" and "token" frame every request: a field of the same name would be overwritten
    by the Client's request id (image_info's image id once was)."""
    for op, fields in OPS.items():
        assert not {"id", "op", "token"} & (set(fields) - ({"token"} if op == "auth" else set())), op
