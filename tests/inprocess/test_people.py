"""People through the Client and the protocol into the engine (in-process), on real face photos.

The photos are twelve public, labelled photos of four people, three each (tests/fixtures/faces,
from deepface's test set: see its README). The faces analysis runs with the real dlib models and
the daemon's default grouping rules; the tiny CLIP model embeds the photos (it knows nothing of
faces: the people come from the face descriptors alone).
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import FIXTURES, InProcessDaemon
from PIL import Image

from isearchd.client import Client
from isearchd.config.schema import PeopleSettings
from isearchd.engine.faces import FacesAnalysis, GroupingRules
from isearchd.errors import InvalidRequest, NotFound
from isearchd.messages import PeopleList

FACES = FIXTURES / "faces"
LABELS: dict[str, str] = json.loads((FACES / "people.json").read_text())
DEFAULTS = PeopleSettings(enabled=True, min_faces=3, max_distance=0.35)


def faces_analysis() -> FacesAnalysis:
    from isearchd.models.dlib_faces import DlibFaceModels
    from isearchd.models.faces import ModelsReader

    rules = GroupingRules(DEFAULTS.max_distance, DEFAULTS.min_faces)
    return FacesAnalysis(ModelsReader(DlibFaceModels()), rules)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    for name in LABELS:
        shutil.copy(FACES / name, folder / name)
    return folder


@pytest.fixture
def daemon_with_faces(make_daemon: Callable[..., InProcessDaemon]) -> InProcessDaemon:
    return make_daemon(faces=faces_analysis).start()


def read_all(c: Client, timeout: float = 120) -> PeopleList:
    """The people once every photo has been read for faces and their faces grouped (the write
    that stores a chunk's faces groups them next: until the write queue is empty, a photo may be
    read but its face not yet in a person)."""
    deadline = time.monotonic() + timeout
    while True:
        found = c.people(hidden=True)
        if found.total and found.analysed == found.total and c.status().queue == 0:
            found = c.people(hidden=True)
            return found
        assert time.monotonic() < deadline, f"faces not read in time: {found}"
        time.sleep(0.2)


def groups(c: Client, found: PeopleList) -> dict[int, set[str]]:
    return {p.id: {Path(photo.path).name for photo in c.person(p.id).photos} for p in found.people}


def pairwise(groups_found: dict[int, set[str]]) -> tuple[float, float]:
    """Pairwise precision and recall of the grouping against the labels."""
    together = {frozenset(pair) for g in groups_found.values() for pair in itertools.combinations(g, 2)}
    truth = {
        frozenset((a, b)) for a, b in itertools.combinations(LABELS, 2) if LABELS[a] == LABELS[b]
    }
    hits = len(together & truth)
    return hits / max(len(together), 1), hits / len(truth)


def test_faces_are_found_and_grouped_into_the_labelled_people(
    daemon_with_faces: InProcessDaemon, photos: Path
) -> None:
    with daemon_with_faces.client("people") as c:
        assert c.add_images([str(photos)]) == len(LABELS)
        found = read_all(c)
        precision, recall = pairwise(groups(c, found))
        assert precision == 1.0 and recall >= 0.95, groups(c, found)
        assert len(found.people) == 4 and all(p.name is None and p.photos == 3 for p in found.people)
        assert all(p.sample is not None and Path(p.sample).name in LABELS for p in found.people)
        status = c.status().analyses["faces"]["people"]
        assert (status.total, status.done, status.unreadable) == (12, 12, 0)
        one = c.person(found.people[0].id).photos[0]
        left, top, width, height = one.box
        with Image.open(one.path) as img:  # the box is in the photo's own pixels
            assert 0 <= left < left + width <= img.width and 0 <= top < top + height <= img.height
            assert width >= 40 and height >= 40


def test_names_search_merge_split_remove_and_forget(daemon_with_faces: InProcessDaemon, photos: Path) -> None:
    with daemon_with_faces.client("fam") as c:
        assert c.add_images([str(photos)]) == len(LABELS)
        found = read_all(c)
        by_label = {LABELS[Path(p.sample or "").name]: p.id for p in found.people}
        ana, bo = by_label["person-a"], by_label["person-b"]
        c.name_person(ana, "Ana")

        # merge (into the named one), then split restores both as they were
        merged = c.merge_people([bo, ana])
        assert merged.person == ana and len(c.person(ana).photos) == 6
        assert {p.id for p in c.people().people} == set(by_label.values()) - {bo}
        c.split_person(ana)
        after = {p.id: (p.name, p.photos) for p in c.people().people}
        assert after[ana] == ("Ana", 3) and after[bo] == (None, 3)
        with pytest.raises(InvalidRequest):
            c.split_person(ana)  # nothing left to undo

        c.name_person(bo, "Bo")
        with pytest.raises(InvalidRequest):
            c.merge_people([ana, bo])  # two names: which one? the user must say (rename first)
        with pytest.raises(InvalidRequest):
            c.name_person(by_label["person-c"], "ana")  # names are unique, whatever their case
        listed = c.people()
        assert [p.name for p in listed.people[:2]] == ["Ana", "Bo"]  # named first

        # --person alone: her photos; with a query: only hers, ranked by the query
        alone = c.search_hits(people=["ana"], num=50)
        assert {Path(h.path).name for h in alone} == {n for n, who in LABELS.items() if who == "person-a"}
        assert all(h.people == ["Ana"] for h in alone)
        hers = sorted(h.path for h in alone)
        ranked = c.search_hits(hers[0], people=["Ana"], num=50)  # a query: ranked by it, hers only
        assert ranked[0].path == hers[0] and ranked[0].similarity == 100.0
        assert {h.path for h in ranked} <= set(hers) and all(h.people == ["Ana"] for h in ranked)
        assert not {h.path for h in c.search_hits(hers[0], num=50)} <= set(hers)  # without: others too
        assert c.search_hits(people=["Ana", "Bo"]) == []  # nobody is in a photo with both
        with pytest.raises(NotFound, match="Ann"):
            c.search(people=["Ann"])

        # a face removed from a person never comes back to it by itself
        wrong = c.person(ana).photos[0].path
        c.remove_face(ana, wrong)
        assert wrong not in {p.path for p in c.person(ana).photos}
        with pytest.raises(NotFound):
            c.remove_face(ana, wrong)

        # forget: everything goes, and people are off for this database
        gone = c.people_settings(forget=True)
        assert gone.enabled is False and c.people(hidden=True).people == []
        with pytest.raises(NotFound):
            c.search(people=["Ana"])


def test_corrections_survive_a_restart_and_a_photo_added_later_joins_its_person(
    daemon_with_faces: InProcessDaemon, photos: Path, tmp_path: Path
) -> None:
    d = daemon_with_faces
    with d.client("later") as c:
        c.add_images([str(photos)])
        found = read_all(c)
        ana = next(p.id for p in found.people if LABELS[Path(p.sample or "").name] == "person-a")
        c.name_person(ana, "Ana")
        wrong = c.person(ana).photos[0].path
        c.remove_face(ana, wrong)
    d.stop()
    d.start()
    with d.client("later") as c:
        assert wrong not in {p.path for p in c.person(ana).photos}
        assert c.people().people[0].name == "Ana"
        # another photo of her (resized: other bytes, the same face) joins her by itself
        first = next(n for n, who in LABELS.items() if who == "person-a")
        with Image.open(photos / first) as img:
            smaller = img.resize((img.width * 9 // 10, img.height * 9 // 10))
        smaller.save(tmp_path / "ana-again.jpg", quality=90)
        c.add_images([str(tmp_path / "ana-again.jpg")])
        read_all(c)
        assert str(tmp_path / "ana-again.jpg") in {p.path for p in c.person(ana).photos}
        assert wrong not in {p.path for p in c.person(ana).photos}  # still not after new faces


@pytest.fixture
def without_faces(make_daemon: Callable[..., InProcessDaemon]) -> Iterator[InProcessDaemon]:
    yield make_daemon().start()


def test_people_ops_are_clear_errors_when_people_are_off(
    without_faces: InProcessDaemon, photos: Path
) -> None:
    with without_faces.client("off") as c:
        c.add_images([str(photos / "img1.jpg")])
        found = c.people()
        assert found.people == [] and found.analysed == 0
        with pytest.raises(NotFound):
            c.person(1)
        with pytest.raises(NotFound):
            c.search(people=["Ana"])


def test_a_deleted_photo_leaves_its_person_who_keeps_the_name(
    daemon_with_faces: InProcessDaemon, photos: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "watched"
    shutil.copytree(photos, folder)
    with daemon_with_faces.client("watched") as c:
        c.watch([str(folder)])
        found = read_all(c)
        while len(found.people) < 4 or found.total < len(LABELS):  # the scan may still be adding
            time.sleep(0.2)
            found = read_all(c)
        ana = next(p.id for p in found.people if LABELS[Path(p.sample or "").name] == "person-a")
        c.name_person(ana, "Ana")
        gone = Path(c.person(ana).photos[0].path)
        gone.unlink()
        deadline = time.monotonic() + 30
        while str(gone) in {p.path for p in c.person(ana).photos}:
            assert time.monotonic() < deadline, "the deleted photo is still hers"
            time.sleep(0.2)
        assert len(c.person(ana).photos) == 2 and c.people().people[0].name == "Ana"
        assert str(gone) not in {h.path for h in c.search_hits(people=["Ana"])}
