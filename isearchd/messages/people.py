"""The people ops: listing the people found in a database, one person's photos, and the user's
corrections (name, merge and its undo, a face that is not that person, hide, forget, on/off).

Person ids are the database's own (stable while the person has faces or a name). A photo is
named by its path, as a search result shows it. A face has an id too (``PersonEntry.face``,
``PersonPhoto.face``): ``face`` says where it is, to cut its picture out (the web page's crops).
"""

from __future__ import annotations

import msgspec

from isearchd.errors import BadField
from isearchd.messages.base import Absolute, Message, NonEmpty, daemon_path
from isearchd.messages.replies import ImageInfo
from isearchd.messages.requests import DEFAULT_DB, Request


class PeopleRequest(Request, frozen=True, kw_only=True):
    """The people of ``db``: named first, then unnamed by photo count (``hidden``: those too)."""

    op = "people"
    db: NonEmpty = DEFAULT_DB
    hidden: bool = False


class PersonRequest(Request, frozen=True, kw_only=True):
    """One person's photos, newest first."""

    op = "person"
    db: NonEmpty = DEFAULT_DB
    person: int


class NamePersonRequest(Request, frozen=True, kw_only=True):
    """Name a person (``name`` None: take the name away; it has that default because the protocol
    reads a null field as a missing one, so a required ``name`` could never be taken away)."""

    op = "name_person"
    db: NonEmpty = DEFAULT_DB
    person: int
    name: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None and (not self.name.strip() or len(self.name) > 200):
            raise BadField("a person's name must be 1 to 200 characters, not only spaces")


class MergePeopleRequest(Request, frozen=True, kw_only=True):
    """Merge people into one (the named one, else the lowest id); ``split_person`` undoes it."""

    op = "merge_people"
    db: NonEmpty = DEFAULT_DB
    people: list[int]

    def __post_init__(self) -> None:
        if len(set(self.people)) < 2:
            raise BadField("merging needs at least two different people")


class SplitPersonRequest(Request, frozen=True, kw_only=True):
    """Undo the last merge into ``person``: the people merged into it come back as they were."""

    op = "split_person"
    db: NonEmpty = DEFAULT_DB
    person: int


class RemoveFaceRequest(Request, frozen=True, kw_only=True):
    """``person`` is not in the photo at ``path``: its face there leaves the person for good."""

    op = "remove_face"
    db: NonEmpty = DEFAULT_DB
    person: int
    path: Absolute

    def __post_init__(self) -> None:
        daemon_path(self.path, "'path'")


class HidePersonRequest(Request, frozen=True, kw_only=True):
    op = "hide_person"
    db: NonEmpty = DEFAULT_DB
    person: int
    hidden: bool = True


class FaceRequest(Request, frozen=True, kw_only=True):
    """Where face ``face`` is: its photo and its box (``NotFound`` once it is gone)."""

    op = "face"
    db: NonEmpty = DEFAULT_DB
    face: int


class PeopleSettingsRequest(Request, frozen=True, kw_only=True):
    """Turn people on or off for ``db`` (``enabled``), or ``forget``: delete every face,
    descriptor, person and name of ``db`` and turn people off for it."""

    op = "people_settings"
    db: NonEmpty = DEFAULT_DB
    enabled: bool | None = None
    forget: bool = False

    def __post_init__(self) -> None:
        if self.forget and self.enabled:
            raise BadField("'forget' turns people off: it cannot be combined with enabled=true")


class PersonEntry(Message, frozen=True, kw_only=True):
    id: int
    name: str | None
    photos: int
    sample: str | None  # the path of one photo of theirs
    hidden: bool = False
    face: int | None = None  # the id of their face in ``sample`` (their best)


class PeopleList(Message, frozen=True, kw_only=True):
    """``analysed`` of ``total`` photos have been read for faces."""

    db: str
    enabled: bool
    analysed: int
    total: int
    people: list[PersonEntry] = msgspec.field(default_factory=list)


class PersonPhoto(Message, frozen=True, kw_only=True):
    path: str
    box: tuple[int, int, int, int]  # the face: left, top, width, height in the photo's pixels
    face: int | None = None  # the face's id (None only from a daemon older than face ids)
    id: int | None = None  # the photo's id in its database, as search hits carry it


class PersonPhotos(Message, frozen=True, kw_only=True):
    id: int
    name: str | None
    photos: list[PersonPhoto] = msgspec.field(default_factory=list)


class PeopleState(Message, frozen=True, kw_only=True):
    """What a correction or a settings change left: the person touched (None after ``forget``)
    and whether people are on for the database."""

    db: str
    enabled: bool
    person: int | None = None


class FaceLocation(Message, frozen=True, kw_only=True):
    """A face: the photo it is in (as ``image_info`` answers), its box in the photo's own pixels
    (after EXIF orientation: left, top, width, height) and its person (None: nobody yet)."""

    face: int
    person: int | None
    box: tuple[int, int, int, int]
    image: ImageInfo
