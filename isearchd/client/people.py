"""The Client's people methods: who is in the photos of its database, and the corrections.

Mixed into ``Client`` (``isearchd.client.api``), whose ``request`` and ``db_name`` they use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from isearchd.files.scan import absolute
from isearchd.messages import (
    HidePersonRequest,
    MergePeopleRequest,
    NamePersonRequest,
    PeopleList,
    PeopleRequest,
    PeopleSettingsRequest,
    PeopleState,
    PersonPhotos,
    PersonRequest,
    RemoveFaceRequest,
    Request,
    SplitPersonRequest,
)

__all__ = ["PeopleMethods"]


class PeopleMethods:
    db_name: str

    def request(self, request: Request, progress: Any = None) -> Any:  # the Client's
        raise NotImplementedError

    def people(self, hidden: bool = False) -> PeopleList:
        """The people found in this database: named first, then unnamed by photo count (``hidden``:
        the hidden ones too), and how many photos have been read for faces (``analysed``/``total``)."""
        reply: PeopleList = self.request(PeopleRequest(db=self.db_name, hidden=hidden))
        return reply

    def person(self, person_id: int) -> PersonPhotos:
        """One person's photos, newest first, with the box of their face in each."""
        reply: PersonPhotos = self.request(PersonRequest(db=self.db_name, person=person_id))
        return reply

    def name_person(self, person_id: int, name: str | None) -> PeopleState:
        """Name a person (None: take the name away). Names are unique in a database."""
        return self._state(NamePersonRequest(db=self.db_name, person=person_id, name=name))

    def merge_people(self, person_ids: Iterable[int]) -> PeopleState:
        """Merge people into one (the named one, else the lowest id); ``split_person`` undoes it."""
        return self._state(MergePeopleRequest(db=self.db_name, people=list(person_ids)))

    def split_person(self, person_id: int) -> PeopleState:
        """Undo the last merge into ``person_id``: the merged people come back as they were."""
        return self._state(SplitPersonRequest(db=self.db_name, person=person_id))

    def remove_face(self, person_id: int, path: str | os.PathLike[str]) -> PeopleState:
        """The person is not in the photo at ``path``: their face there leaves them for good."""
        return self._state(RemoveFaceRequest(db=self.db_name, person=person_id, path=absolute(path)))

    def hide_person(self, person_id: int, hidden: bool = True) -> PeopleState:
        return self._state(HidePersonRequest(db=self.db_name, person=person_id, hidden=hidden))

    def people_settings(self, *, enabled: bool | None = None, forget: bool = False) -> PeopleState:
        """Turn people on or off for this database, or ``forget``: delete every face, descriptor,
        person and name it holds, and turn people off for it (until ``enabled=True``)."""
        return self._state(PeopleSettingsRequest(db=self.db_name, enabled=enabled, forget=forget))

    def _state(self, request: Request) -> PeopleState:
        reply: PeopleState = self.request(request)
        return reply
