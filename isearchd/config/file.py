"""The effective configuration: defaults < user config file < environment < command line.

The user config is a TOML file (``settings.user_config_path()``: ``$ISEARCH_CONFIG``, else
``<platformdirs user config dir>/isearch.toml``; or an explicit ``--config PATH``). Its
commented template is ``config/isearch.toml`` (shipped in the package as
``isearchd/defaults/isearch.toml`` for ``isearch config init``). Layout::

    home = "~/.isearch"
    [service]   bind, token, log_level, log_file
    [model]     name, device, threads, batch_size, precision, exporter
    [ui]        listen, cache_mb
    [store]     url, prefix, host     (Qdrant; the API key only from $ISEARCH_QDRANT_API_KEY)
    [people]    enabled, min_faces, max_distance, workers
    [words]     enabled, min_score, language
    [video]     interval, max_frames, time_limit
    [[watch]]   path, db, exclude          (repeatable)

Every resolved value remembers where it came from (a :class:`Source`), so ``isearch config
show`` can say why a setting has the value it has. A malformed file, an unknown key or a value
of the wrong type raises :class:`~isearchd.errors.ConfigError` naming the file and line.

This module resolves; the settings and the typed ``Config`` are declared in ``schema``, the file
is read by ``document``, and each value is checked by ``checks``. The names other modules use
are re-exported here, where they have always been.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs

from isearchd.config import checks, settings
from isearchd.config.document import ConfigDocument
from isearchd.config.schema import (
    ALIASES,
    ENV_VARS,
    EXPORTERS,
    LOG_LEVELS,
    MAX_BATCH_SIZE,
    PRECISIONS,
    QDRANT_API_KEY_ENV,
    SCALARS,
    STORE_SCHEMES,
    Config,
    ModelSettings,
    PeopleSettings,
    ServiceSettings,
    Source,
    SourceKind,
    StoreSettings,
    UiSettings,
    VideoSettings,
    WatchFolder,
    WordsSettings,
)
from isearchd.errors import ConfigError
from isearchd.messages import JsonObject

__all__ = [
    "DEFAULT_TEMPLATE",
    "ENV_VARS",
    "LOG_LEVELS",
    "MAX_BATCH_SIZE",
    "PRECISIONS",
    "QDRANT_API_KEY_ENV",
    "STORE_SCHEMES",
    "Config",
    "ModelSettings",
    "PeopleSettings",
    "ServiceSettings",
    "Source",
    "SourceKind",
    "StoreSettings",
    "UiSettings",
    "VideoSettings",
    "WatchFolder",
    "WordsSettings",
    "default_config_text",
    "describe",
    "load_config",
    "user_config_path",
]

DEFAULT_TEMPLATE = "isearch.toml"


def default_config_text() -> str:
    """The commented default configuration (``config/isearch.toml``, shipped as package data)."""
    return resources.files("isearchd").joinpath("defaults", DEFAULT_TEMPLATE).read_text(encoding="utf-8")


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$ISEARCH_CONFIG``, else the platformdirs user config file, read from ``environ``."""
    if environ is None:
        return settings.user_config_path()
    env = environ.get("ISEARCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(settings.APP_NAME)) / "isearch.toml"


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration.

    ``path``: an explicit config file (must exist); None reads the user config file when it
    exists. ``overrides``: command-line values by dotted name (``"service.bind"``) or short
    name (``"bind"``, ``"model"``, ``"log_level"``, ...); None values are ignored, so CLI
    options can be passed straight through. ``environ`` defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    file = _config_file(path, environ)
    doc = ConfigDocument.read(file) if file is not None else None
    values, sources = _scalars(doc, env, overrides or {})
    home = Path(str(values["home"])).expanduser()
    sources["watch"] = Source("default")
    watch: tuple[WatchFolder, ...] = ()
    if doc is not None and doc.has("watch"):
        watch, sources["watch"] = doc.watch_folders()
    # the tables in this order, so the first bad value reported is the same as ever
    service = _service(values, home, sources)
    model = _model(values, sources)
    ui = _ui(values, sources)
    store = _store(values, sources)
    people = _people(values, sources)
    language = checks.non_empty(values["words.language"], sources["words.language"], "the words language")
    words = WordsSettings(
        enabled=bool(values["words.enabled"]),
        min_score=checks.float_range(float(values["words.min_score"]), 0.0, 1.0, sources["words.min_score"]),
        language=language.lower(),
    )
    return Config(
        home=home,
        service=service,
        model=model,
        ui=ui,
        store=store,
        people=people,
        words=words,
        video=_video(values, sources),
        watch=watch,
        file=file,
        sources=MappingProxyType(sources),
    )


def _video(values: Mapping[str, Any], sources: dict[str, Source]) -> VideoSettings:
    def number(key: str, low: float, high: float) -> float:
        return checks.float_range(float(values[key]), low, high, sources[key])

    return VideoSettings(
        interval=number("video.interval", 0.5, 3600.0),
        max_frames=checks.int_range(values["video.max_frames"], 1, 10_000, sources["video.max_frames"]),
        time_limit=number("video.time_limit", 1.0, 86_400.0),
    )


def _config_file(path: str | Path | None, environ: Mapping[str, str] | None) -> Path | None:
    """The explicit file (which must exist), else the user config file when there is one."""
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist (create it with `isearch config init`)")
        return file
    candidate = user_config_path(environ)
    return candidate if candidate.is_file() else None


def _scalars(
    doc: ConfigDocument | None, env: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[JsonObject, dict[str, Source]]:
    """Every scalar setting's raw value and source: default < file < environment < command line."""
    values: JsonObject = {}
    sources: dict[str, Source] = {}
    for key, (typ, var, default) in SCALARS.items():
        values[key], sources[key] = default, Source("default")
        if doc is not None and doc.has(key):
            values[key], sources[key] = doc.get(key, typ)
        raw = env.get(var)
        if raw:
            values[key], sources[key] = checks.parse_env(var, raw, typ), Source("env", var)
    for name, value in overrides.items():
        if value is None:
            continue
        key = ALIASES.get(name, name)
        if key not in SCALARS:
            raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(SCALARS))}")
        source = Source("cli", "--" + key.rsplit(".", 1)[-1].replace("_", "-"))
        values[key], sources[key] = checks.coerce(value, SCALARS[key][0], str(source)), source
    return values, sources


def _service(values: Mapping[str, Any], home: Path, sources: dict[str, Source]) -> ServiceSettings:
    return ServiceSettings(
        bind=checks.resolve_bind(values["service.bind"], home, sources),
        token=values["service.token"] or None,
        log_level=checks.choice(values["service.log_level"], LOG_LEVELS, sources["service.log_level"]),
        log_file=checks.resolve_log_file(values["service.log_file"], home, sources),
    )


def _model(values: Mapping[str, Any], sources: Mapping[str, Source]) -> ModelSettings:
    return ModelSettings(
        name=checks.non_empty(values["model.name"], sources["model.name"], "the model name"),
        device=checks.device(values["model.device"], sources["model.device"]),
        threads=checks.int_range(values["model.threads"], 0, 1024, sources["model.threads"]),
        batch_size=checks.int_range(
            values["model.batch_size"], 1, MAX_BATCH_SIZE, sources["model.batch_size"]
        ),
        precision=checks.choice(values["model.precision"], PRECISIONS, sources["model.precision"]),
        exporter=checks.choice(values["model.exporter"], EXPORTERS, sources["model.exporter"]),
    )


def _ui(values: Mapping[str, Any], sources: Mapping[str, Source]) -> UiSettings:
    return UiSettings(
        listen=checks.listen(values["ui.listen"], sources["ui.listen"]),
        cache_mb=checks.int_range(values["ui.cache_mb"], 16, 1 << 20, sources["ui.cache_mb"]),
    )


def _store(values: Mapping[str, Any], sources: Mapping[str, Source]) -> StoreSettings:
    return StoreSettings(
        url=checks.store_url(values["store.url"], sources["store.url"]),
        prefix=checks.non_empty(values["store.prefix"], sources["store.prefix"], "the store prefix"),
        host=values["store.host"] or None,
    )


def _people(values: Mapping[str, Any], sources: Mapping[str, Source]) -> PeopleSettings:
    return PeopleSettings(
        enabled=bool(values["people.enabled"]),
        min_faces=checks.int_range(values["people.min_faces"], 2, 1000, sources["people.min_faces"]),
        max_distance=checks.float_range(
            float(values["people.max_distance"]), 0.1, 1.0, sources["people.max_distance"]
        ),
        workers=checks.int_range(values["people.workers"], 0, 64, sources["people.workers"]),
    )


def describe(config: Config) -> list[tuple[str, str, Source]]:
    """(setting, value as shown, source) rows for ``isearch config show``. The token is masked."""
    rows: list[tuple[str, str, Source]] = [
        ("home", str(config.home), config.source("home")),
        ("service.bind", config.service.bind, config.source("service.bind")),
        (
            "service.token",
            "(set, hidden)" if config.service.token else "(none)",
            config.source("service.token"),
        ),
        ("service.log_level", config.service.log_level, config.source("service.log_level")),
        (
            "service.log_file",
            str(config.service.log_file) if config.service.log_file else "- (stderr)",
            config.source("service.log_file"),
        ),
        ("model.name", config.model.name, config.source("model.name")),
        ("model.device", config.model.device, config.source("model.device")),
        (
            "model.threads",
            str(config.model.threads) + (" (physical cores)" if config.model.threads == 0 else ""),
            config.source("model.threads"),
        ),
        ("model.batch_size", str(config.model.batch_size), config.source("model.batch_size")),
        ("model.precision", config.model.precision, config.source("model.precision")),
        ("model.exporter", config.model.exporter, config.source("model.exporter")),
        ("ui.listen", config.ui.listen or "(on request: isearch ui)", config.source("ui.listen")),
        ("ui.cache_mb", str(config.ui.cache_mb), config.source("ui.cache_mb")),
    ]
    rows += [
        (
            "store.url",
            config.store.url or "(embedded: SQLite + hnswlib under home)",
            config.source("store.url"),
        ),
        ("store.prefix", config.store.prefix, config.source("store.prefix")),
        ("store.host", config.store.host or "(this machine's host name)", config.source("store.host")),
        ("people.enabled", "on" if config.people.enabled else "off", config.source("people.enabled")),
        ("people.min_faces", str(config.people.min_faces), config.source("people.min_faces")),
        ("people.max_distance", f"{config.people.max_distance:g}", config.source("people.max_distance")),
        ("people.workers", str(config.people.workers or "auto"), config.source("people.workers")),
        ("words.enabled", "on" if config.words.enabled else "off", config.source("words.enabled")),
        ("words.min_score", f"{config.words.min_score:g}", config.source("words.min_score")),
        ("words.language", config.words.language, config.source("words.language")),
        ("video.interval", f"{config.video.interval:g} s", config.source("video.interval")),
        ("video.max_frames", str(config.video.max_frames), config.source("video.max_frames")),
        ("video.time_limit", f"{config.video.time_limit:g} s", config.source("video.time_limit")),
    ]
    if not config.watch:
        rows.append(("watch", "(none)", config.source("watch")))
    for i, folder in enumerate(config.watch):
        excl = ", ".join(folder.exclude) if folder.exclude else "-"
        rows.append(
            (f"watch[{i}]", f"{folder.path} -> db {folder.db} (exclude: {excl})", config.source("watch"))
        )
    return rows
