"""The op table: each op's request type, reply type, and how a client may treat it.

``OPS["search"]`` says that a ``search`` request is a ``SearchRequest`` and that its reply is a
list of ``Hit``: the protocol validates requests and encodes replies from these declarations, and
the Client decodes replies with them, so the two sides cannot disagree about a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isearchd.messages.people import (
    FaceLocation,
    FaceRequest,
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
    SplitPersonRequest,
)
from isearchd.messages.replies import (
    DbInfo,
    DupsReply,
    FolderState,
    Hello,
    Hit,
    ImageInfo,
    Migrated,
    Status,
    UiAddress,
    Unwatched,
    WatchFailure,
)
from isearchd.messages.requests import (
    AddRequest,
    AuthRequest,
    ClearDbRequest,
    CompareRequest,
    DbInfoRequest,
    DupsRequest,
    HelloRequest,
    ImageInfoRequest,
    ListDbsRequest,
    MigrateRequest,
    Request,
    SearchRequest,
    ShutdownRequest,
    StatusRequest,
    UiRequest,
    UnchangedRequest,
    UnwatchRequest,
    WatchErrorsRequest,
    WatchListRequest,
    WatchRequest,
)
from isearchd.messages.words import PhotoInfoRequest, WordsSettingsRequest, WordsState
from isearchd.reports import AddReport

__all__ = ["OPS", "Op"]


@dataclass(frozen=True)
class Op:
    """An operation: ``request`` and ``reply`` types (``reply``: anything msgspec can decode
    into, e.g. ``list[Hit]``); ``retry``: it changes nothing, so the Client may send it once more
    when the connection was lost before any answer (the daemon was restarted)."""

    request: type[Request]
    reply: Any
    retry: bool = False


OPS: dict[str, Op] = {
    op.request.op: op
    for op in (
        Op(HelloRequest, Hello, retry=True),
        Op(AuthRequest, bool),
        Op(StatusRequest, Status, retry=True),
        Op(AddRequest, AddReport),
        Op(UnchangedRequest, list[str]),
        Op(SearchRequest, list[Hit], retry=True),
        Op(CompareRequest, float, retry=True),
        Op(DupsRequest, DupsReply, retry=True),
        Op(ListDbsRequest, list[str], retry=True),
        Op(DbInfoRequest, DbInfo, retry=True),
        Op(ImageInfoRequest, ImageInfo, retry=True),
        Op(UiRequest, UiAddress),
        Op(ClearDbRequest, bool),
        Op(MigrateRequest, Migrated),
        Op(ShutdownRequest, bool),
        Op(WatchRequest, list[FolderState]),
        Op(UnwatchRequest, Unwatched),
        Op(WatchListRequest, list[FolderState], retry=True),
        Op(WatchErrorsRequest, list[WatchFailure], retry=True),
        Op(PeopleRequest, PeopleList, retry=True),
        Op(PersonRequest, PersonPhotos, retry=True),
        Op(NamePersonRequest, PeopleState),
        Op(MergePeopleRequest, PeopleState),
        Op(SplitPersonRequest, PeopleState),
        Op(RemoveFaceRequest, PeopleState),
        Op(HidePersonRequest, PeopleState),
        Op(PeopleSettingsRequest, PeopleState),
        Op(FaceRequest, FaceLocation, retry=True),
        Op(PhotoInfoRequest, ImageInfo, retry=True),
        Op(WordsSettingsRequest, WordsState),
    )
}
