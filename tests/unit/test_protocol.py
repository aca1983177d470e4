"""The JSON-lines protocol: request validation, line framing, bind addresses, message types.

Every op's request and reply round-trips through the wire (JSON text and back into its type),
and requests written as the protocol has always carried them still parse to the same values.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from isearchd.errors import InvalidRequest, ProtocolError
from isearchd.messages import (
    OPS,
    AddReport,
    AddRequest,
    BackfillProgress,
    DbInfo,
    DupGroup,
    DupImage,
    DupsReply,
    FaceLocation,
    FileItem,
    FileStat,
    FolderState,
    Hello,
    Hit,
    ImageInfo,
    ImageRef,
    Migrated,
    MigrateRequest,
    NamePersonRequest,
    PeopleList,
    PeopleState,
    PersonEntry,
    PersonPhoto,
    PersonPhotos,
    Progress,
    QueryPart,
    SearchRequest,
    Status,
    UiAddress,
    Unwatched,
    WatchFailure,
    WatchSummary,
    WordLine,
    WordsState,
)
from isearchd.protocol import (
    MAX_LINE_BYTES,
    LineReader,
    LineTooLong,
    b64encode,
    encode,
    error_reply,
    is_loopback,
    ok_reply,
    parse_bind,
    parse_request,
    progress_event,
    read_result,
    request_id,
    to_wire,
)


def test_request_defaults_are_filled_in() -> None:
    req = parse_request(b'{"id": 3, "op": "search", "text": "a red circle"}')
    assert req == SearchRequest(id=3, text="a red circle")
    assert isinstance(req, SearchRequest)
    assert (req.db, req.num, req.similarity, req.sort, req.within, req.plus) == (
        "default",
        10,
        0,
        "similarity",
        [],
        [],
    )
    # null is the same as leaving the field out
    assert parse_request(b'{"op": "search", "text": "x", "num": null, "place": null}') == SearchRequest(
        text="x"
    )


def test_every_documented_op_is_known() -> None:
    for op in ("hello", "status", "add", "search", "compare", "list_dbs", "db_info", "clear_db", "shutdown"):
        assert op in OPS
    for op, spec in OPS.items():
        assert spec.request.op == op


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"id": 1, "op": "fly"}', "unknown op 'fly'"),
        (b'{"id": 1}', "needs an 'op'"),
        (b'{"id": 1, "op": 5}', "needs an 'op'"),
        (b'{"id": 1, "op": "search", "text": "x", "num": "5"}', "search: 'num' must be an integer"),
        (b'{"id": 1, "op": "search", "text": "x", "num": 2.5}', "'num' must be an integer"),
        (b'{"id": 1, "op": "search", "text": "x", "num": true}', "'num' must be an integer"),
        (b'{"id": 1, "op": "search", "text": 7}', "'text' must be a string"),
        (b'{"id": 1, "op": "search", "text": ""}', "'text' must be a non-empty string"),
        (b'{"id": 1, "op": "search"}', "exactly one of 'text', 'image' or 'like'"),
        (b'{"id": 1, "op": "search", "text": "x", "like": "/a"}', "exactly one of 'text', 'image' or 'like'"),
        (
            b'{"id": 1, "op": "search", "text": "x", "plus": [{"text": "y", "weight": 0}]}',
            "plus[0]: 'weight'",
        ),
        (b'{"id": 1, "op": "search", "text": "x", "plus": [{"weight": 1}]}', "plus[0]: needs exactly one"),
        (b'{"id": 1, "op": "search", "text": "x", "within": ["rel/dir"]}', "must be absolute"),
        (b'{"id": 1, "op": "add", "paths": "/x"}', "'paths' must be a list"),
        (b'{"id": 1, "op": "add"}', "exactly one of 'paths'"),
        (
            b'{"id": 1, "op": "add", "files": [{"label": "a", "data": "***"}]}',
            "files[0].data: invalid base64",
        ),
        (b'{"id": 1, "op": "compare", "a": {"path": "/x"}}', "missing required field 'b'"),
        (
            b'{"id": 1, "op": "compare", "a": {"path": "/x", "data": "AAAA"}, "b": {"path": "/y"}}',
            "a: needs exactly one",
        ),
        (b'{"id": 1, "op": "compare", "a": "/x.jpg", "b": {"path": "/y"}}', "'a' must be an object"),
        (b'{"id": 1, "op": "dups", "num": 0}', "at least 1"),
        (
            b'{"id": 1, "op": "unchanged", "files": [{"label": "a", "size": -1, "mtime_ns": 1}]}',
            "non-negative",
        ),
        (b'{"id": 1, "op": "unchanged", "files": [{"label": "", "size": 1, "mtime_ns": 1}]}', "non-empty"),
        (b'{"id": 1, "op": "unchanged", "files": ["a.jpg"]}', "'files[0]' must be an object"),
        (
            b'{"id": 1, "op": "search", "like": "a\\u0000b"}',
            "search: 'like': a file name cannot contain a NUL",
        ),
        (
            b'{"id": 1, "op": "search", "like": "/v.mp4\\u00003.5"}',
            "search: 'like': a file name cannot contain a NUL",
        ),
        (b'{"id": [1], "op": "hello"}', "'id' must be"),
        (b'{"id": 1, "op": "hello", "token": 5}', "'token' must be a string"),
        (b'{"id": 1, "op": "auth"}', "missing required field 'token'"),
    ],
)
def test_invalid_requests_are_rejected_with_a_clear_message(line: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        parse_request(line)
    assert message in ei.value.message
    assert ei.value.code == "invalid_request"
    assert "\n" not in ei.value.message


def test_like_may_name_a_video_frame() -> None:
    """A video's further frames are stored as LABEL, NUL, seconds: "more like this" of a video
    hit's moment names one (the web page does); a NUL anywhere else still names nothing."""
    request = parse_request(b'{"id": 1, "op": "search", "like": "/v.mp4\\u000083.000", "plus": '
                            b'[{"like": "/v.mp4\\u00000.000"}]}')  # fmt: skip
    assert isinstance(request, SearchRequest)
    assert request.like == "/v.mp4\x0083.000" and request.plus[0].like == "/v.mp4\x000.000"


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
    assert parse_request('{"op": "search", "text": "x", "similarity": 80}').similarity == 80  # type: ignore[attr-defined]
    assert parse_request('{"op": "search", "text": "x", "similarity": 72.5}').similarity == 72.5  # type: ignore[attr-defined]


def test_request_id_survives_a_rejected_request() -> None:
    assert request_id({"id": 9, "op": "nope"}) == 9
    assert request_id({"id": "abc"}) == "abc"
    assert request_id({"id": True}) is None
    assert request_id([1]) is None


def test_replies_are_single_json_lines() -> None:
    line = ok_reply(4, [{"label": "rött äpple.jpg", "similarity": 92.3}])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "id": 4,
        "ok": True,
        "result": [{"label": "rött äpple.jpg", "similarity": 92.3}],
    }
    err = json.loads(error_reply(5, InvalidRequest("bad")))
    assert err == {"id": 5, "ok": False, "error": {"code": "invalid_request", "message": "bad"}}
    ev = json.loads(progress_event(6, to_wire(Progress(1, 2, 1, 0, 0))))
    assert ev == {"id": 6, "event": "progress", "done": 1, "total": 2, "added": 1, "skipped": 0, "failed": 0}


def test_add_report_carries_its_total_and_merges() -> None:
    r = AddReport(added=3, skipped=2, failed=[("/a/b.jpg", "not an image")])
    wire = json.loads(json.dumps(to_wire(r)))
    assert wire == {"added": 3, "skipped": 2, "failed": [["/a/b.jpg", "not an image"]], "total": 6}
    assert read_result("add", wire) == r
    assert read_result("add", {**wire, "total": 99}).total == 6  # derived, never trusted
    assert r.merged(AddReport(added=1)).added == 4


def test_image_refs() -> None:
    assert ImageRef(path="/x.jpg").source == "/x.jpg"
    ref = msgspec.convert({"data": b64encode(b"\x89PNG"), "name": "x.png"}, ImageRef)
    assert ref.data == b"\x89PNG" and ref.display == "x.png" and ref.source == b"\x89PNG"
    assert to_wire(ImageRef(data=b"\x89PNG")) == {"data": b64encode(b"\x89PNG")}  # no nulls on the wire
    for bad in ({"path": "/x", "data": "AAAA"}, {}):
        with pytest.raises(msgspec.ValidationError, match="exactly one"):
            msgspec.convert(bad, ImageRef)
    with pytest.raises(msgspec.ValidationError, match="absolute"):
        msgspec.convert({"path": "x.jpg"}, ImageRef)


# One example of every op: the request as a client builds it, and a reply as the daemon answers.
_FOLDER = FolderState(
    path="/p",
    db="default",
    state="watching",
    mode="inotify",
    images=3,
    exclude=["*.psd"],
    errors=[("/p/x", "permission denied")],
    last_failure=("/p/a.jpg", "truncated JPEG"),
)
_STATUS = Status(
    pid=1,
    rss_bytes=2,
    model="ViT-45LY",
    dim=512,
    home="/h",
    databases=["default"],
    uptime_s=1.5,
    queue=0,
    metadata={"default": BackfillProgress(total=3, done=1)},
    looks={},
    watch=[WatchSummary(path="/p", db="default", state="watching", mode="inotify", pending=0)],
    bind="/h/s.sock",
    ui=None,
    version="0.1.0",
    protocol=1,
)
EXAMPLES: dict[str, tuple[dict[str, Any], Any]] = {
    "hello": (
        {},
        Hello(
            protocol=1,
            server="isearchd",
            version="0.1.0",
            model="ViT-45LY",
            dim=512,
            authenticated=True,
            bind="/h/s.sock",
            max_line_bytes=64,
            transport="tcp",
        ),
    ),
    "auth": ({"token": "t"}, True),
    "status": ({}, _STATUS),
    "add": (
        {"db": "d", "files": [FileItem(label="a.jpg", data=b"\xff\xd8", size=2, mtime_ns=3)]},
        AddReport(added=1, failed=[("/b.jpg", "truncated JPEG")]),
    ),
    "unchanged": ({"files": [FileStat(label="a.jpg", size=1, mtime_ns=2)]}, ["a.jpg"]),
    "search": (
        {
            "text": "a red circle",
            "num": 5,
            "similarity": 50.5,
            "after": "2019-06",
            "within": ["/p"],
            "types": ["jpeg"],
            "sort": "newest",
            "plus": [QueryPart(text="sunset", weight=0.5)],
            "minus": [QueryPart(image=ImageRef(data=b"x", name="q.jpg"))],
        },
        [
            Hit(
                label="a.jpg",
                path="/p/a.jpg",
                similarity=97.5,
                bytes=10,
                id=1,
                taken="2019-07-14T18:30:05+01:00",
                taken_source="exif",
                width=4,
                height=3,
                place="Lisbon",
                type="jpeg",
            ),
            Hit(label="b.jpg", path="/q/b.jpg", similarity=90.0, host="laptop"),
        ],
    ),
    "compare": ({"a": ImageRef(path="/a.jpg"), "b": ImageRef(data=b"\x00")}, 87.5),
    "dups": (
        {"similarity": 95, "within": "/p", "num": 3},
        DupsReply(
            min_similarity=95.0,
            total=1,
            groups=[
                DupGroup(
                    keep="a",
                    reason="the most pixels",
                    images=[
                        DupImage(
                            label="a",
                            path="/p/a",
                            similarity=100.0,
                            width=4,
                            height=3,
                            bytes=9,
                            taken=None,
                            id=1,
                        )
                    ],
                )
            ],
        ),
    ),
    "list_dbs": ({}, ["default", "photos"]),
    "db_info": (
        {"db": "photos"},
        DbInfo(
            name="photos",
            base="/h/photos",
            size=3,
            capacity=1024,
            disk_bytes=5,
            model="ViT-45LY",
            dim=512,
            created="2026-12-07",
            loaded=True,
        ),
    ),
    "image_info": (
        {"image_id": 7, "people": True},
        ImageInfo(id=7, label="a.jpg", path="/p/a.jpg", bytes=3, mtime_ns=4, hash="ab", people=["Ana"]),
    ),
    "ui": (
        {"listen": "127.0.0.1:0"},
        UiAddress(url="http://127.0.0.1:8765/", listen="127.0.0.1:8765", login=False),
    ),
    "clear_db": ({"db": "d"}, True),
    "migrate": ({"to": "qdrant:///x"}, Migrated(db="d", source="embedded", to="qdrant:///x", copied=3)),
    "shutdown": ({}, True),
    "watch": ({"paths": ["/p"], "exclude": ["*.psd"]}, [_FOLDER]),
    "unwatch": ({"path": "/p", "purge": True}, Unwatched(path="/p", db="default", removed=3)),
    "watch_list": ({"db": "default"}, [_FOLDER]),
    "watch_errors": (
        {"path": "/p"},
        [WatchFailure(db="default", folder="/p", path="/p/a.jpg", reason="truncated")],
    ),
    "people": (
        {"db": "fam", "hidden": True},
        PeopleList(
            db="fam",
            enabled=True,
            analysed=3,
            total=4,
            people=[PersonEntry(id=7, name="Ana", photos=3, sample="/p/a.jpg", hidden=False, face=31)],
        ),
    ),
    "person": (
        {"person": 7},
        PersonPhotos(
            id=7, name="Ana", photos=[PersonPhoto(path="/p/a.jpg", box=(1, 2, 30, 40), face=31, id=5)]
        ),
    ),
    "name_person": ({"person": 7, "name": "Ana"}, PeopleState(db="default", enabled=True, person=7)),
    "merge_people": ({"people": [7, 12]}, PeopleState(db="default", enabled=True, person=7)),
    "split_person": ({"person": 7}, PeopleState(db="default", enabled=True, person=7)),
    "remove_face": ({"person": 7, "path": "/p/a.jpg"}, PeopleState(db="default", enabled=True, person=7)),
    "hide_person": ({"person": 7, "hidden": False}, PeopleState(db="default", enabled=True, person=7)),
    "people_settings": ({"forget": True}, PeopleState(db="default", enabled=False)),
    "face": (
        {"db": "fam", "face": 31},
        FaceLocation(
            face=31,
            person=7,
            box=(1, 2, 30, 40),
            image=ImageInfo(id=7, label="a.jpg", path="/p/a.jpg", bytes=3, mtime_ns=4, hash="ab", width=60),
        ),
    ),
    "photo_info": (
        {"db": "fam", "label": "/p/a.jpg"},
        ImageInfo(
            id=7,
            label="/p/a.jpg",
            path="/p/a.jpg",
            people=["Ana"],
            words="BOARDING PASS\nGATE B7",
            lines=[
                WordLine(text="BOARDING PASS", box=(10, 20, 300, 40), score=0.98),
                WordLine(text="GATE B7", box=(10, 70, 150, 40), score=0.95),
            ],
        ),
    ),
    "words_settings": ({"db": "fam", "enabled": False}, WordsState(db="fam", enabled=False, read=0, total=4)),
}


def test_every_op_has_an_example() -> None:
    assert set(EXAMPLES) == set(OPS)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_round_trips_through_the_wire(op: str) -> None:
    fields, reply = EXAMPLES[op]
    request = OPS[op].request(id=9, **fields)
    line = encode({"op": op, **to_wire(request)})  # as the Client sends it
    assert parse_request(line) == request
    answer = json.loads(ok_reply(9, to_wire(reply)))  # as the server answers
    assert answer["ok"] is True
    assert read_result(op, answer["result"]) == reply


def test_the_wire_format_is_unchanged() -> None:
    """Lines as clients wrote them before the types existed parse to the same values, and replies
    keep their keys (the --json schemas and launchers read them)."""
    old = parse_request(
        '{"id": 1, "op": "add", "db": "x", "files": [{"label": "a", "path": "/c/a", "data": "AAEC", '
        '"size": 3, "mtime_ns": 4}], "label_type": "path"}'
    )
    assert old == AddRequest(
        id=1, db="x", files=[FileItem(label="a", path="/c/a", data=b"\x00\x01\x02", size=3, mtime_ns=4)]
    )
    assert parse_request('{"op": "migrate", "from": "qdrant:///x"}') == MigrateRequest(source="qdrant:///x")
    hit = to_wire(EXAMPLES["search"][1][0])
    assert set(hit) == {
        "label",
        "path",
        "similarity",
        "taken",
        "taken_source",
        "width",
        "height",
        "place",
        "type",
        "bytes",
        "id",
    }
    assert to_wire(EXAMPLES["search"][1][1])["host"] == "laptop"  # only another machine's images carry it
    assert set(to_wire(EXAMPLES["migrate"][1])) == {"db", "from", "to", "copied"}
    assert to_wire(EXAMPLES["db_info"][1]).keys() == {
        "name",
        "base",
        "size",
        "capacity",
        "disk_bytes",
        "model",
        "dim",
        "created",
        "loaded",
        "vectors",  # added: ``size`` counts a video once, ``vectors`` its frames
    }


def test_a_reply_that_does_not_fit_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="'status'"):
        read_result("status", {"pid": "one"})
    with pytest.raises(ProtocolError):
        read_result("search", [{"path": "/a"}])


def test_no_request_has_a_field_named_like_the_envelope() -> None:
    """ "id", "op" and "token" frame every request: a field of the same name would be overwritten
    by the Client's request id (image_info's image id once was)."""
    base = {f.name: f.type for f in msgspec.structs.fields(OPS["hello"].request)}
    assert set(base) == {"id", "token"}
    for op, spec in OPS.items():
        fields = {f.encode_name: f.type for f in msgspec.structs.fields(spec.request)}
        assert "op" not in fields, op
        assert fields["id"] == base["id"], op
        assert op == "auth" or fields["token"] == base["token"], op


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


def test_the_docs_name_every_op() -> None:
    """docs/how-it-works.md lists the ops a client may send: all of them, and no other."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "how-it-works.md").read_text()
    listed = text.split("Ops: ", 1)[1].split(";", 1)[0]
    assert sorted(name.strip(" `\n") for name in listed.split(",")) == sorted(OPS)


def test_people_requests_check_their_fields() -> None:
    for line, needle in (
        ('{"op": "merge_people", "people": [7, 7]}', "at least two different people"),
        ('{"op": "name_person", "person": 7, "name": "   "}', "1 to 200 characters"),
        ('{"op": "remove_face", "person": 7, "path": "rel/a.jpg"}', "absolute"),
        ('{"op": "people_settings", "forget": true, "enabled": true}', "cannot be combined"),
        ('{"op": "person", "person": "seven"}', "person"),
        ('{"op": "search", "people": []}', "exactly one of"),
        ('{"op": "search", "people": ["Ana"], "plus": [{"text": "sea"}]}', "need a query"),
    ):
        with pytest.raises(InvalidRequest, match=needle):
            parse_request(line)
    assert parse_request('{"op": "search", "people": ["Ana"]}') == SearchRequest(people=["Ana"])
    unnamed = NamePersonRequest(person=7, name=None)  # null: no name (it once read as missing)
    assert parse_request('{"op": "name_person", "person": 7, "name": null}') == unnamed
