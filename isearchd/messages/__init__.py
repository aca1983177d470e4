"""What travels between the daemon and its clients: one type per request and per reply.

Owns: the request types (``requests``: their fields, defaults and shape checks), the reply types
(``replies``), and the op table (``ops.OPS``: each op's request and reply type), declared once and
used on both sides: the protocol (``isearchd.protocol``) validates requests into these types and
encodes replies from them, the handler dispatches on them, the engine and the watcher build the
replies, the Client decodes answers back into them, and the command line and the web page read
them. Frozen msgspec Structs: plain data, checked when built from JSON.

May import: ``reports``, ``files``, ``errors`` (the foundation). Every layer may import it.
"""

from isearchd.messages.base import ImageRef, JsonObject, Message
from isearchd.messages.ops import OPS, Op
from isearchd.messages.replies import (
    BackfillProgress,
    DbInfo,
    DupGroup,
    DupImage,
    DupsReply,
    EngineStatus,
    FolderState,
    Hello,
    Hit,
    ImageInfo,
    Migrated,
    PhotoFacts,
    Status,
    UiAddress,
    Unwatched,
    WatchFailure,
    WatchSummary,
)
from isearchd.messages.requests import (
    AddRequest,
    AuthRequest,
    ClearDbRequest,
    CompareRequest,
    DbInfoRequest,
    DupsRequest,
    FileItem,
    FileStat,
    HelloRequest,
    ImageInfoRequest,
    ListDbsRequest,
    MigrateRequest,
    QueryPart,
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
from isearchd.reports import AddReport, Progress

__all__ = [
    "OPS",
    "AddReport",
    "AddRequest",
    "AuthRequest",
    "BackfillProgress",
    "ClearDbRequest",
    "CompareRequest",
    "DbInfo",
    "DbInfoRequest",
    "DupGroup",
    "DupImage",
    "DupsReply",
    "DupsRequest",
    "EngineStatus",
    "FileItem",
    "FileStat",
    "FolderState",
    "Hello",
    "HelloRequest",
    "Hit",
    "ImageInfo",
    "ImageInfoRequest",
    "ImageRef",
    "JsonObject",
    "ListDbsRequest",
    "Message",
    "MigrateRequest",
    "Migrated",
    "Op",
    "PhotoFacts",
    "Progress",
    "QueryPart",
    "Request",
    "SearchRequest",
    "ShutdownRequest",
    "Status",
    "StatusRequest",
    "UiAddress",
    "UiRequest",
    "UnchangedRequest",
    "UnwatchRequest",
    "Unwatched",
    "WatchErrorsRequest",
    "WatchFailure",
    "WatchListRequest",
    "WatchRequest",
    "WatchSummary",
]
