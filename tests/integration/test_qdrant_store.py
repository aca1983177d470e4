"""Databases in Qdrant through the real daemon (``--store qdrant:///PATH``: qdrant-client's local
mode, no server), ``isearch migrate`` both ways between daemons, and people shared by daemons."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from daemons import FIXTURES, DaemonProcess
from shapes import write_samples

from isearchd.protocol import to_wire


def isearch(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "isearchd.cli", *args, "-B", d.bind],
        env=d.env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=d.root,
    )


def test_a_daemon_on_qdrant_and_migrate_both_ways(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    pictures = tmp_path / "pictures"
    write_samples(pictures, 2)  # 2 per class
    store = f"qdrant://{tmp_path}/qdrant"
    # every daemon here names its collections with this prefix: migrate's target too
    settings = '[store]\nprefix = "mine-"\n'

    # a daemon on the embedded store indexes the photos, then copies them to Qdrant
    local = make_daemon()
    (local.root / "config.toml").write_text(settings, encoding="utf-8")
    local.start()
    with local.client("photos") as c:
        added = c.add([str(pictures)]).added
        before = {h.path: h.similarity for h in c.search_hits("a red circle", num=5)}
    assert added > 0
    done = isearch(local, "migrate", "--to", store, "-d", "photos")
    assert done.returncode == 0, done.stderr
    assert f"Copied {added} images" in done.stdout
    with local.client("photos") as c:
        assert c.get_db_info()["size"] == added  # the local one is left intact
    local.stop()

    # a daemon started on that Qdrant store sees the same database and answers the same search
    remote = make_daemon(extra_args=("--store", store))
    (remote.root / "config.toml").write_text(settings, encoding="utf-8")
    remote.start()
    with remote.client("photos") as c:
        info = c.db_info()
        assert info.size == added and info.store == store
        hits = c.search_hits("a red circle", num=5)
        assert {h.path: h.similarity for h in hits} == before
        assert all("host" not in to_wire(h) for h in hits)  # this machine's images
        assert c.image_info(hits[0].id or 0).path == hits[0].path
        more = write_samples(tmp_path / "more", 1, classes=[("blue", "star")])
        assert c.add([str(p) for p in more]).added == 1
        assert c.add([str(pictures)]).added == 0  # already there, unchanged
    # ... and copies it back into its own embedded store
    back = isearch(remote, "migrate", "--from", store, "-d", "photos")
    assert back.returncode == 0, back.stderr
    assert f"Copied {added + 1} images" in back.stdout
    remote.stop()
    collections = {p.name for p in (tmp_path / "qdrant" / "collection").iterdir()}
    assert collections == {"mine-photos", "mine-.databases"}
    embedded = make_daemon(remote.root).start()  # the same home, the embedded store
    with embedded.client("photos") as c:
        assert c.get_db_info()["size"] == added + 1
        assert {h.path for h in c.search_hits("a red circle", num=5)} == set(before)


def test_people_in_a_qdrant_store_are_shared_by_its_daemons(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """A daemon on local-mode Qdrant with people on finds the four people of the face photos;
    one is named; a search by her finds her photos. A second daemon ("beta", after the first
    stops: local mode allows one client) sees her name and finds her photos too."""
    labels: dict[str, str] = json.loads((FIXTURES / "faces" / "people.json").read_text())
    photos = tmp_path / "faces"
    shutil.copytree(FIXTURES / "faces", photos)
    store = f"qdrant://{tmp_path}/qdrant"
    alpha = make_daemon(extra_args=("--store", store), people=True)
    (alpha.root / "config.toml").write_text('[store]\nhost = "alpha"\n', encoding="utf-8")
    alpha.start()
    with alpha.client("fam") as c:
        assert c.add([str(photos)]).added == len(labels)
        deadline = time.monotonic() + 120
        # (grouping follows the last photos' faces: wait for both)
        while (listed := c.people()).analysed < len(labels) or len(listed.people) < 4:
            assert time.monotonic() < deadline, listed
            time.sleep(0.3)
        assert len(listed.people) == 4 and all(p.photos == 3 for p in listed.people), listed
        ana = next(p.id for p in listed.people if labels[Path(p.sample or "").name] == "person-a")
        c.name_person(ana, "Ana")
        hers = {n for n, who in labels.items() if who == "person-a"}
        hits = c.search_hits(people=["ana"], num=10)
        assert {Path(h.path).name for h in hits} == hers and all(h.people == ["Ana"] for h in hits)
    assert alpha.stop() == 0, alpha.output()
    collections = {p.name for p in (tmp_path / "qdrant" / "collection").iterdir()}
    assert {"isearch-.faces", "isearch-.people"} <= collections

    beta = make_daemon(extra_args=("--store", store), people=True)
    (beta.root / "config.toml").write_text('[store]\nhost = "beta"\n', encoding="utf-8")
    beta.start()
    with beta.client("fam") as c:
        assert c.person(ana).name == "Ana" and len(c.person(ana).photos) == 3
        found = isearch(beta, "--person", "Ana", "--json", "-d", "fam")
        assert found.returncode == 0, found.stderr
        results = json.loads(found.stdout)["results"]
        assert {Path(h["path"]).name for h in results} == hers
        assert all(h["host"] == "alpha" for h in results)  # alpha's photos, found from beta
    assert beta.stop() == 0, beta.output()
