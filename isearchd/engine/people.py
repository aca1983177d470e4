"""What the people ops do: list the people of a database, show one, say where a face is, and the
user's corrections.

Reads go to the database's readers; every change (a name, a merge and its undo, a face removed
from a person, hide, on/off, forget) is a job of the engine's one write queue, as every write.
The faces themselves are found by the faces analysis (``isearchd.engine.faces``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from isearchd.engine.analysis import read_progress
from isearchd.engine.faces import FacesAnalysis
from isearchd.engine.jobqueue import JobQueue
from isearchd.errors import NotFound
from isearchd.messages import (
    FaceLocation,
    FaceRequest,
    HidePersonRequest,
    ImageInfo,
    MergePeopleRequest,
    NamePersonRequest,
    PeopleList,
    PeopleRequest,
    PeopleSettingsRequest,
    PeopleState,
    PersonEntry,
    PersonPhoto,
    PersonPhotos,
    PersonRequest,
    RemoveFaceRequest,
    SplitPersonRequest,
)
from isearchd.store import ImageDatabase
from isearchd.store.people_db import PeopleStore, people_store

log = logging.getLogger(__name__)

__all__ = ["People"]

T = TypeVar("T")
PeopleOp = (
    PeopleRequest
    | PersonRequest
    | NamePersonRequest
    | MergePeopleRequest
    | SplitPersonRequest
    | RemoveFaceRequest
    | HidePersonRequest
    | PeopleSettingsRequest
    | FaceRequest
)


class People:
    """The people ops over the engine's databases (``database``: open one by name; ``image``: one
    image of a database by id, as ``image_info`` answers it)."""

    def __init__(
        self,
        database: Callable[[str], ImageDatabase],
        jobs: JobQueue,
        faces: FacesAnalysis | None,
        restart: Callable[[ImageDatabase], None],
        image: Callable[[str, int], ImageInfo],
    ) -> None:
        self._database = database
        self._jobs = jobs
        self.faces = faces
        self._restart = restart  # look for photos to read again (people turned on)
        self._image = image

    def answer(self, req: PeopleOp) -> PeopleList | PersonPhotos | PeopleState | FaceLocation:
        db, people = self._open(req.db)
        match req:
            case PeopleRequest():
                return self._list(db, people, req.hidden)
            case PersonRequest():
                return self._person(people, req.person)
            case NamePersonRequest():
                self._write(db, lambda: people.name_person(req.person, req.name))
                return self._state(db, people, req.person)
            case MergePeopleRequest():
                kept = self._write(db, lambda: people.merge_people(req.people))
                return self._state(db, people, kept)
            case SplitPersonRequest():
                self._write(db, lambda: people.split_person(req.person))
                return self._state(db, people, req.person)
            case RemoveFaceRequest():
                image_id = self._photo_of(people, req.person, req.path)
                self._write(db, lambda: people.remove_face(req.person, image_id))
                return self._state(db, people, req.person)
            case HidePersonRequest():
                hide = people.hide_person if req.hidden else people.unhide_person
                self._write(db, lambda: hide(req.person))
                return self._state(db, people, req.person)
            case PeopleSettingsRequest():
                return self._settings(db, people, req)
            case FaceRequest():
                crop = people.face_crop_box(req.face)  # NotFound for a face that is gone
                image = self._image(db.name, crop.image_id)
                return FaceLocation(face=crop.face_id, person=crop.person_id, box=crop.box, image=image)

    def named_in(self, db_name: str, image_ids: Sequence[int]) -> dict[int, list[str]]:
        """The names of the named people in each of these images (a search's hits)."""
        _, people = self._open(db_name)
        return people.people_in_images(image_ids)

    def named_in_image(self, db_name: str, image_id: int) -> list[str]:
        """The named people in one image."""
        _, people = self._open(db_name)
        return people.people_in_images([image_id]).get(image_id, [])

    def check_names(self, db: ImageDatabase, names: Sequence[str]) -> None:
        """``NotFound`` (naming the closest names) unless each name is a person of ``db``."""
        people_store(db).image_ids_with_people(names)  # raises for a name no person has

    # -- the ops ---------------------------------------------------------------------------------

    def _list(self, db: ImageDatabase, people: PeopleStore, hidden: bool) -> PeopleList:
        if self.faces is not None:
            progress = read_progress(self.faces, db)
            total, analysed = progress.total, progress.done
        else:  # no face models: nothing is read
            total, analysed = db.count(), 0
        entries = [
            PersonEntry(
                id=p.id,
                name=p.name,
                photos=p.photos,
                sample=p.sample_path,
                hidden=p.hidden,
                face=p.sample_face_id,
            )
            for p in people.people_list(hidden)
        ]
        enabled = people.people_enabled()
        return PeopleList(db=db.name, enabled=enabled, analysed=analysed, total=total, people=entries)

    def _person(self, people: PeopleStore, person_id: int) -> PersonPhotos:
        photos = people.person_photos(person_id)  # NotFound for an unknown id
        return PersonPhotos(
            id=person_id,
            name=people.person_name(person_id),
            photos=[PersonPhoto(path=p.path, box=p.box, face=p.face_id, id=p.image_id) for p in photos],
        )

    def _settings(self, db: ImageDatabase, people: PeopleStore, req: PeopleSettingsRequest) -> PeopleState:
        if req.forget:

            def forget() -> None:  # one job: nothing is read again between the two
                people.set_people_enabled(False)
                people.forget_people()

            self._write(db, forget)
            log.warning("forgot every face and person of database %r", db.name)
        elif req.enabled is not None:
            self._write(db, lambda: people.set_people_enabled(bool(req.enabled)))
            if req.enabled:
                self._restart(db)
        return PeopleState(db=db.name, enabled=people.people_enabled())

    # -- helpers ---------------------------------------------------------------------------------

    def _open(self, name: str) -> tuple[ImageDatabase, PeopleStore]:
        db = self._database(name)
        return db, people_store(db)

    @staticmethod
    def _photo_of(people: PeopleStore, person_id: int, path: str) -> int:
        """The id of the photo at ``path`` among the person's (``NotFound`` when they are not in it)."""
        for photo in people.person_photos(person_id):
            if photo.path == path:
                return photo.image_id
        raise NotFound(f"person {person_id} is not in a photo at {path}")

    def _write(self, db: ImageDatabase, change: Callable[[], T]) -> T:
        box: list[T] = []
        self._jobs.run(lambda: box.append(change()), f"people of {db.name}")
        return box[0]

    def _state(self, db: ImageDatabase, people: PeopleStore, person: int | None) -> PeopleState:
        return PeopleState(db=db.name, enabled=people.people_enabled(), person=person)
