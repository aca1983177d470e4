"""The settings: every name, its type, environment variable, default and table, and the typed
``Config`` they resolve into (frozen dataclasses; ``isearchd.config.file`` resolves them).

Every resolved value remembers where it came from (a :class:`Source`), so ``isearch config
show`` can say why a setting has the value it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from isearchd.config import settings

SourceKind = Literal["default", "file", "env", "cli"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
PRECISIONS = ("fp32", "int8")
# What makes a model's ONNX Runtime export: "builder" (from the weights, no torch) or "torch".
EXPORTERS = ("builder", "torch")
MAX_BATCH_SIZE = 1024

# The Qdrant API key is read from the environment only (never the config file or command line).
QDRANT_API_KEY_ENV = "ISEARCH_QDRANT_API_KEY"
STORE_SCHEMES = ("qdrant://", "qdrants://")


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from."""

    kind: SourceKind
    detail: str = ""  # "path:line" for a file, the variable for env, the option for cli

    def __str__(self) -> str:
        if self.kind == "default":
            return f"default ({self.detail})" if self.detail else "default"
        if self.kind == "file":
            return f"config file {self.detail}"
        if self.kind == "env":
            return f"environment {self.detail}"
        return f"command line {self.detail}".rstrip()


@dataclass(frozen=True)
class WatchFolder:
    """One ``[[watch]]`` table: keep database ``db`` in sync with folder ``path``."""

    path: Path
    db: str = settings.DEFAULT_DB
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSettings:
    bind: str  # a Unix socket path, or "host:port" for TCP
    token: str | None
    log_level: str  # one of LOG_LEVELS
    log_file: Path | None  # None: standard error (the journal under systemd)


@dataclass(frozen=True)
class ModelSettings:
    name: str  # a registry key or a checkpoint path
    device: str
    threads: int  # 0: one per physical core
    batch_size: int
    precision: str  # one of PRECISIONS
    exporter: str = "builder"  # what makes the ONNX export on a cache miss: one of EXPORTERS


@dataclass(frozen=True)
class UiSettings:
    listen: str | None  # "HOST:PORT" the daemon serves the web page at from its start; None: on request
    cache_mb: int  # the thumbnail cache's bound on disk


@dataclass(frozen=True)
class StoreSettings:
    url: str | None  # None: the embedded store under home; "qdrant://HOST:PORT" or "qdrant:///ABS/PATH"
    prefix: str  # Qdrant collection of database NAME: <prefix>NAME
    host: str | None  # the name this machine's images carry in a shared store; None: the host name


@dataclass(frozen=True)
class PeopleSettings:
    enabled: bool  # find faces and group them into people (a database may turn it off for itself)
    min_faces: int  # similar faces it takes to form a new person
    max_distance: float  # the largest face-descriptor distance that counts as the same person
    workers: int = 0  # processes that read faces; 0: one per core, at most two


@dataclass(frozen=True)
class WordsSettings:
    enabled: bool  # read the words in every photo (a database may turn it off for itself)
    min_score: float  # lines the recogniser is less sure of than this are not kept
    # the recognition model's language (isearchd.models.ocr_languages); the packaged one by default
    language: str = settings.DEFAULT_WORDS_LANGUAGE


@dataclass(frozen=True)
class VideoSettings:
    interval: float  # at least one frame of a video indexed every this many seconds
    max_frames: int  # at most this many frames per video (a long video is sampled evenly)
    time_limit: float  # seconds reading one video may take before it fails


@dataclass(frozen=True)
class Config:
    home: Path
    service: ServiceSettings
    model: ModelSettings
    watch: tuple[WatchFolder, ...]
    file: Path | None  # the config file that was read; None when there was none
    ui: UiSettings = UiSettings(listen=None, cache_mb=512)
    store: StoreSettings = StoreSettings(url=None, prefix="isearch-", host=None)
    people: PeopleSettings = PeopleSettings(enabled=True, min_faces=3, max_distance=0.35)
    words: WordsSettings = WordsSettings(enabled=True, min_score=0.5)
    video: VideoSettings = VideoSettings(interval=10.0, max_frames=200, time_limit=300.0)
    sources: Mapping[str, Source] = field(default_factory=dict, compare=False, hash=False)

    def source(self, key: str) -> Source:
        """The source of a dotted setting name (``"model.name"``, ``"home"``, ``"watch"``)."""
        return self.sources.get(ALIASES.get(key, key), Source("default"))


# Scalar settings: dotted name -> (type, environment variable, default). "" defaults are
# resolved against the final home (bind, log_file) or mean "unset" (token).
SCALARS: dict[str, tuple[type, str, str | int | float | bool]] = {
    "home": (str, "ISEARCH_HOME", "~/.isearch"),
    "service.bind": (str, "ISEARCH_BIND", ""),
    "service.token": (str, "ISEARCH_TOKEN", ""),
    "service.log_level": (str, "ISEARCH_LOG_LEVEL", "info"),
    "service.log_file": (str, "ISEARCH_LOG_FILE", ""),
    "model.name": (str, "ISEARCH_MODEL", settings.DEFAULT_MODEL),
    "model.device": (str, "ISEARCH_DEVICE", "cpu"),
    "model.threads": (int, "ISEARCH_THREADS", 0),
    "model.batch_size": (int, "ISEARCH_BATCH_SIZE", 32),
    "model.precision": (str, "ISEARCH_PRECISION", "fp32"),
    "model.exporter": (str, "ISEARCH_EXPORTER", "builder"),
    "ui.listen": (str, "ISEARCH_UI_LISTEN", ""),
    "ui.cache_mb": (int, "ISEARCH_UI_CACHE_MB", 512),
    "store.url": (str, "ISEARCH_STORE", ""),
    "store.prefix": (str, "ISEARCH_STORE_PREFIX", "isearch-"),
    "store.host": (str, "ISEARCH_STORE_HOST", ""),
    "people.enabled": (bool, "ISEARCH_PEOPLE", True),
    "people.min_faces": (int, "ISEARCH_PEOPLE_MIN_FACES", 3),
    "people.max_distance": (float, "ISEARCH_PEOPLE_MAX_DISTANCE", 0.35),
    "people.workers": (int, "ISEARCH_PEOPLE_WORKERS", 0),
    "words.enabled": (bool, "ISEARCH_WORDS", True),
    "words.min_score": (float, "ISEARCH_WORDS_MIN_SCORE", 0.5),
    "words.language": (str, "ISEARCH_WORDS_LANGUAGE", settings.DEFAULT_WORDS_LANGUAGE),
    "video.interval": (float, "ISEARCH_VIDEO_INTERVAL", 10.0),
    "video.max_frames": (int, "ISEARCH_VIDEO_MAX_FRAMES", 200),
    "video.time_limit": (float, "ISEARCH_VIDEO_TIME_LIMIT", 300.0),
}
ENV_VARS: Mapping[str, str] = MappingProxyType({k: v[1] for k, v in SCALARS.items()})

# Short names accepted in ``overrides`` (the daemon's and CLI's option names).
ALIASES = {
    "bind": "service.bind",
    "token": "service.token",
    "log_level": "service.log_level",
    "log_file": "service.log_file",
    "model": "model.name",
    "device": "model.device",
    "threads": "model.threads",
    "batch_size": "model.batch_size",
    "precision": "model.precision",
    "store": "store.url",
}
# The file's layout: the keys of each table, of a [[watch]] table, and at the top.
TABLES = {
    "service": ("bind", "token", "log_level", "log_file"),
    "model": ("name", "device", "threads", "batch_size", "precision", "exporter"),
    "ui": ("listen", "cache_mb"),
    "store": ("url", "prefix", "host"),
    "people": ("enabled", "min_faces", "max_distance", "workers"),
    "words": ("enabled", "min_score", "language"),
    "video": ("interval", "max_frames", "time_limit"),
}
WATCH_KEYS = ("path", "db", "exclude")
TOP_KEYS = ("home", "service", "model", "ui", "store", "people", "words", "video", "watch")
