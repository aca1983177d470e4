"""Any file name, stored, carried and shown without loss (``isearchd.files.names`` and the catalog)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isearchd.errors import DiskFull, InvalidRequest
from isearchd.files.names import check_name, from_db, json_line, json_safe, printable, shown, to_db
from isearchd.messages import AddRequest
from isearchd.protocol import decode_reply, encode, parse_request
from isearchd.store import Database, ImageRecord, SavePolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import schemas

# Names as the file system has them: any bytes but NUL and '/'.
NAME_BYTES = st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b and b"/" not in b)
FEW = settings(max_examples=60, derandomize=True, database=None, deadline=None)


def fsname(raw: bytes) -> str:
    return os.fsdecode(raw)


@FEW
@given(NAME_BYTES)
def test_catalog_bytes_round_trip(raw: bytes) -> None:
    name = fsname(raw)
    assert to_db(name) == raw
    assert from_db(to_db(name)) == name


@FEW
@given(st.lists(NAME_BYTES, min_size=1, max_size=4))
def test_protocol_line_round_trips_any_name(parts: list[bytes]) -> None:
    path = "/" + "/".join(fsname(p) for p in parts)
    line = encode({"id": 1, "ok": True, "result": [{"path": path}]})
    line.decode("utf-8")  # a valid UTF-8 line, whatever the name
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert decode_reply(line[:-1])["result"][0]["path"] == path
    assert os.fsencode(decode_reply(line[:-1])["result"][0]["path"]) == b"/" + b"/".join(parts)
    # and the daemon reads such a path back from a request
    req = parse_request(encode({"id": 2, "op": "add", "paths": [path]})[:-1])
    assert isinstance(req, AddRequest) and req.paths == [path]


def test_json_escape_survives_backslashes() -> None:
    name = 'a\\\udce9\\\\\udcff"é'
    text = json_line({"p": name})
    assert "\\udce9" in text and "é" in text
    assert json.loads(text) == {"p": name}
    assert json.loads(json_safe(json.dumps([name], ensure_ascii=False))) == [name]


@FEW
@given(NAME_BYTES)
def test_shown_is_one_line_and_names_the_same_file_in_bash(raw: bytes) -> None:
    text = shown("/d/" + fsname(raw))
    assert "\n" not in text and "\r" not in text
    assert text.isprintable()
    if text.startswith("/"):
        assert os.fsencode(text) == b"/d/" + raw
    else:
        assert text.startswith("$'") and text.endswith("'")
        # bash reads it back as the same bytes
        out = subprocess.run(["bash", "-c", f"printf %s {text}"], capture_output=True, check=True).stdout
        assert out == b"/d/" + raw


def test_shown_leaves_plain_names_alone() -> None:
    assert shown("/photos/Mum's café 2019.jpg") == "/photos/Mum's café 2019.jpg"
    assert shown("/a/new\nline.jpg") == "$'/a/new\\nline.jpg'"
    assert shown("/a/caf\udce9.jpg") == "$'/a/caf\\xe9.jpg'"
    assert printable("cannot read /a/caf\udce9\n.jpg") == "cannot read /a/caf\\xe9\\n.jpg"


@pytest.mark.parametrize("bad", ["/a/\ud800.jpg", "/a/\udc00.jpg", "/a/b\x00.jpg"])
def test_names_no_file_can_have_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        check_name(bad, "add")
    with pytest.raises(InvalidRequest):
        parse_request(json.dumps({"op": "add", "paths": [bad]}))


# -- the catalog ---------------------------------------------------------------------------------

ODD = [
    b"caf\xe9.jpg",  # Latin-1, not UTF-8
    b"\xff\xfe.jpg",
    "café ünïcødé.jpg".encode(),
    b"new\nline.jpg",
    b"tab\there.jpg",
    b"-leading-dash.jpg",
    b"x" * 251 + b".jpg",  # 255 bytes, the longest name
]


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    return v / np.linalg.norm(v)


def test_catalog_stores_odd_names_and_moves_folders(tmp_path: Path) -> None:
    folder = fsname(b"/photos/\xe9t\xe9")
    names = [f"{folder}/{fsname(n)}" for n in ODD]
    with Database.open(tmp_path, "t", model_key="m", dim=16, save_policy=SavePolicy(background=False)) as db:
        db.add([ImageRecord(n, n, 1, 2, f"h{i}", _vec(i)) for i, n in enumerate(names)])
        db.add([ImageRecord("/photos/plain.jpg", "/photos/plain.jpg", 1, 2, "p", _vec(99))])
        assert {r.label for r in db.records(folder)} == set(names)
        for i, n in enumerate(names):
            hit = db.search(_vec(i), k=1)[0]
            assert hit.label == n and hit.path == n
        moved = fsname(b"/photos/\xe9t\xe9 2")
        assert db.move_prefix(folder, moved) == len(names)
        assert db.count_below(moved) == len(names) and db.count_below(folder) == 0
        assert db.get(f"{moved}/{fsname(ODD[0])}") is not None
        db.add_folder(moved)
        assert [f.path for f in db.folders()] == [moved]
        assert db.delete_prefix(moved) == len(names)
        assert db.count() == 1


def test_text_rows_of_an_older_catalog_are_migrated(tmp_path: Path) -> None:
    """A catalog of schema 2 (names as TEXT) opens, and its rows are found by name afterwards."""
    base = tmp_path / "t"
    with Database.open(tmp_path, "t", model_key="m", dim=16, save_policy=SavePolicy(background=False)) as db:
        db.add([ImageRecord("/p/é.jpg", "/p/é.jpg", 1, 2, "h", _vec(1))])
        db.add_folder("/p")
    conn = sqlite3.connect(base / "catalog.sqlite")
    with conn:  # turn it back into what schema 2 wrote
        conn.execute("UPDATE images SET label = CAST(label AS TEXT), path = CAST(path AS TEXT)")
        conn.execute("UPDATE folders SET path = CAST(path AS TEXT)")
    schemas.undo(conn, 3)  # and without what m004 and later added
    with conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    assert conn.execute("SELECT typeof(label) FROM images").fetchone() == ("text",)
    conn.close()
    with Database.open(tmp_path, "t", model_key="m", dim=16, save_policy=SavePolicy(background=False)) as db:
        assert db.get("/p/é.jpg") is not None
        assert db.count_below("/p") == 1
        assert [f.path for f in db.folders()] == ["/p"]


def test_a_full_disk_is_said_plainly_and_keeps_what_was_committed(tmp_path: Path) -> None:
    with Database.open(tmp_path, "t", model_key="m", dim=16, save_policy=SavePolicy(background=False)) as db:
        db.add([ImageRecord("/p/0.jpg", "/p/0.jpg", 1, 2, "h0", _vec(0))])
        conn = db.catalog._writer.conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
        big = [ImageRecord(f"/p/{i}.jpg", f"/p/{i}.jpg", 1, 2, f"h{i}", _vec(i)) for i in range(1, 400)]
        with pytest.raises(DiskFull, match="is full") as err:
            db.add(big)
        assert "cannot rollback" not in err.value.message
        assert db.count() == 1
        conn.execute("PRAGMA max_page_count = 1073741823")
        db.add(big)
        assert db.count() == 400


@settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(NAME_BYTES)
def test_any_name_is_stored_and_found(tmp_path: Path, raw: bytes) -> None:
    name = "/any/" + fsname(raw)
    with Database.open(tmp_path, "t", model_key="m", dim=16, save_policy=SavePolicy(background=False)) as db:
        db.add([ImageRecord(name, name, 1, 2, "h", _vec(0))])
        assert db.get(name) is not None
        assert db.labels_present([name]) == {name}
        assert [r.path for r in db.records("/any")].count(name) == 1
        db.delete_labels([name])
        assert db.get(name) is None
