"""Model weights on disk: the cache, downloading, importing.

Weights live in ``settings.weights_cache_dir()`` (``$ISEARCH_CACHE``, else the platformdirs user
cache ``isearch/weights``), one file per model under the release file's own name
(``TinyCLIP-auto-ViT-45M-32-Text-18M-LAIONYFCC400M.pt``). A file is only ever put there whole:
downloads stream into ``<file>.part`` and imports into a temporary file, each fsynced and then
renamed into place, so a crash or a full disk never leaves a half file under the final name.

``pull`` downloads with the standard library only (urllib):

- resume: a ``<file>.part`` left by an interrupted pull is continued with an HTTP ``Range``
  request when the server answers ``206``; a server that ignores ``Range`` (``200``) or answers
  for another file size restarts the download from zero;
- retry: connection errors, timeouts, truncated bodies, ``5xx``, ``408`` and ``429`` are retried
  with exponential backoff; ``404`` and other client errors are final at once;
- a bounded time: pull gives up when ``max_total_s`` seconds pass without receiving a byte (the
  clock restarts whenever data arrives, so a slow but steady download of a large file goes on);
  an unreachable server is reported within that budget;
- size check: the body must have exactly the size the server announced (``Content-Length``,
  ``Content-Range``); otherwise nothing is put in the cache;
- checksum: where the file's SHA-256 is known (the text recognition models of
  ``isearchd.models.ocr_languages``: rapidocr's model list carries one), a download with another
  is deleted and reported, never put in the cache.

``fetch_file`` is that downloader for any file; ``pull`` fetches a model key's weights with it.

Environment: ``ISEARCH_WEIGHTS_URL`` replaces the official download location with a base URL
(a mirror, or a local server in tests); the weights file name is appended to it, so
``ISEARCH_WEIGHTS_URL=http://mirror.lan/tinyclip`` fetches
``http://mirror.lan/tinyclip/TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt`` for ViT-8Y.

For machines without internet, ``isearchd.models.importer.import_weights`` loads a given file as
the named architecture first (a checkpoint of another model, or a truncated one, is refused with
the reason) and only then copies it into the cache.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isearchd.config import settings
from isearchd.errors import ModelError, WeightsMissing
from isearchd.files.durable import copy_whole, fsync_dir, fsync_file
from isearchd.models.exports import file_sha256
from isearchd.models.registry import get_spec

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, "int | None"], None]

WEIGHTS_URL_ENV = "ISEARCH_WEIGHTS_URL"

# Socket timeout for connecting and for each read. A stalled connection costs this long before
# it is retried.
DEFAULT_TIMEOUT_S = 10.0
# Give up after this long without receiving data: keeps "weights cannot be fetched" under 30 s
# on a machine without network, while a slow but steady download is never cut off.
DEFAULT_MAX_TOTAL_S = 25.0
# Backoff between attempts: 0.5 s, doubling, capped at 8 s (and by the time left).
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
# Read/write granularity; also how often the progress callback runs.
CHUNK_BYTES = 1 << 20

_RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def cache_file(key: str) -> Path:
    """Where the weights of ``key`` are (or would be) cached; the file may not exist."""
    return settings.weights_cache_dir() / get_spec(key).file_name


def is_cached(key: str) -> bool:
    """Whether the weights of ``key`` are in the cache."""
    path = cache_file(key)
    return path.is_file() and path.stat().st_size > 0


def download_url(key: str) -> str:
    """The URL ``pull`` fetches for ``key``: ``$ISEARCH_WEIGHTS_URL/<file>`` or the official one."""
    spec = get_spec(key)
    base = os.environ.get(WEIGHTS_URL_ENV, "").strip()
    if base:
        return f"{base.rstrip('/')}/{spec.file_name}"
    return spec.url


def cached_path(key: str) -> Path:
    """The cached weights of ``key``; raises ``WeightsMissing`` (saying how to get them) if absent."""
    key = get_spec(key).key
    path = cache_file(key)
    if path.is_file() and path.stat().st_size > 0:
        return path
    raise WeightsMissing(
        f"weights for {key} are not in the cache ({path}). Download them with `isearch model pull {key}` "
        f"(from {download_url(key)}), or, on a machine without internet, fetch that file elsewhere and "
        f"run `isearch model import {key} FILE`."
    )


def place_in_cache(source: Path, target: Path) -> None:
    """Copy a file given to `isearch model import` (checked by the caller) to its place in the
    cache, whole or not at all (``ModelError`` saying why it could not be copied)."""
    if target.exists() and source.resolve() == target.resolve():
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_whole(source, target)
    except OSError as e:
        raise ModelError(f"cannot copy {source} into the weights cache {target.parent}: {e}") from None


def _missing_message(name: str, url: str, reason: str, target: Path) -> str:
    return (
        f"cannot download weights for {name} from {url}: {reason}. Try again later with "
        f"`isearch model pull {name}`, or download that file on another machine and run "
        f"`isearch model import {name} FILE`; the weights belong at {target}."
    )


class _Retry(Exception):
    """One attempt failed in a way worth retrying; the message says how."""


class _Final(Exception):
    """One attempt failed in a way retrying cannot fix (404, forbidden, ...)."""


@dataclass
class _Download:
    """State carried between attempts of one pull."""

    url: str
    part: Path
    timeout_s: float
    progress: ProgressCallback | None
    total: int | None = None  # the size the server announced, once known
    use_range: bool = True  # cleared when a server answers a Range request inconsistently


def pull(
    key: str,
    *,
    progress: ProgressCallback | None = None,
    url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_total_s: float = DEFAULT_MAX_TOTAL_S,
    first_byte_s: float | None = None,
) -> Path:
    """Download the weights of ``key`` into the cache and return their path.

    ``progress(done, total)`` is called as bytes arrive (``total`` is None when the server does
    not say). ``url`` overrides the download location (default: ``download_url(key)``).
    ``timeout_s`` bounds each connect/read; ``max_total_s`` is how long pull keeps retrying
    without receiving data; ``first_byte_s`` (default: ``max_total_s``) how long it keeps trying
    before the first byte arrives, so a download nobody asked for by name (``service start``)
    fails fast on a machine without network. Raises ``WeightsMissing`` (naming the URL, the cache path and the
    ``pull``/``import`` commands) when the file cannot be fetched; an interrupted download's
    ``.part`` file is kept so the next pull resumes it.
    """
    key = get_spec(key).key
    return fetch_file(
        key,
        url or download_url(key),
        cache_file(key),
        progress=progress,
        timeout_s=timeout_s,
        max_total_s=max_total_s,
        first_byte_s=first_byte_s,
    )


def fetch_file(
    name: str,
    source: str,
    target: Path,
    *,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_total_s: float = DEFAULT_MAX_TOTAL_S,
    first_byte_s: float | None = None,
) -> Path:
    """Download ``source`` to ``target`` as ``pull`` does (resume, retry, size check, ``.part``
    then rename), checking its SHA-256 when ``sha256`` is given. ``name`` is what `isearch model
    pull|import` call the file (``ViT-8Y``, ``ocr-korean``): the errors name those commands."""
    if urllib.parse.urlsplit(source).scheme not in ("http", "https"):
        reason = "only http:// and https:// URLs can be downloaded"
        raise WeightsMissing(_missing_message(name, source, reason, target))
    target.parent.mkdir(parents=True, exist_ok=True)
    state = _Download(
        url=source, part=target.with_name(target.name + ".part"), timeout_s=timeout_s, progress=progress
    )
    _fetch(state, name, target, max_total_s, max_total_s if first_byte_s is None else first_byte_s)
    size = _part_size(state.part)
    if state.total is not None and size != state.total:
        state.part.unlink(missing_ok=True)
        reason = f"the download has {size} bytes, the server announced {state.total}"
        raise WeightsMissing(_missing_message(name, state.url, reason, target))
    if sha256 is not None:
        got = file_sha256(state.part)
        if got != sha256.lower():
            state.part.unlink(missing_ok=True)
            reason = f"its SHA-256 is {got}, not the published {sha256} (a wrong file or a broken mirror)"
            raise WeightsMissing(_missing_message(name, state.url, reason, target))
    fsync_file(state.part)
    state.part.replace(target)
    fsync_dir(target.parent)
    log.info("%s saved to %s (%d bytes)", name, target, size)
    return target


def _fetch(state: _Download, name: str, target: Path, max_total_s: float, first_s: float) -> None:
    """Attempts with exponential backoff until one gets the whole body; raises ``WeightsMissing``
    on a final failure, or when ``first_s`` (then, once bytes arrive, ``max_total_s``) passes
    without progress."""
    started = time.monotonic()
    deadline = started + first_s
    delay = BACKOFF_FIRST_S
    attempts = 0
    while True:
        attempts += 1
        received_before = _part_size(state.part)
        try:
            _attempt(state, deadline)
            return
        except _Final as e:
            raise WeightsMissing(_missing_message(name, state.url, str(e), target)) from None
        except _Retry as e:
            now = time.monotonic()
            if _part_size(state.part) > received_before:
                deadline = now + max_total_s  # progress was made: the stall clock restarts
            wait = min(delay, BACKOFF_MAX_S)
            if now + wait >= deadline:
                tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
                reason = f"{e} (gave up after {tries} in {now - started:.0f} s)"
                raise WeightsMissing(_missing_message(name, state.url, reason, target)) from None
            log.warning("download of %s failed (%s); retrying in %.1f s", state.url, e, wait)
            time.sleep(wait)
            delay *= 2


def _attempt(state: _Download, deadline: float) -> None:
    """One HTTP request: resume or (re)start ``state.part``; raises _Retry or _Final on failure."""
    have = _part_size(state.part)
    if state.total is not None and have == state.total:
        return  # a previous attempt got everything; the caller checks and renames
    headers = {"User-Agent": "isearchd-weights/1", "Accept-Encoding": "identity"}
    if have and state.use_range:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(state.url, headers=headers)  # noqa: S310 - scheme checked in pull
    timeout = max(0.5, min(state.timeout_s, deadline - time.monotonic()))
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked in pull
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:
            content_range = e.headers.get("Content-Range", "") if e.headers is not None else ""
            complete = re.fullmatch(r"bytes\s+\*/(\d+)", content_range.strip())
            if complete and int(complete.group(1)) == have:
                state.total = have  # an earlier pull got everything but the rename
                return
            # our .part is past the end of the remote file: start over
            state.part.unlink(missing_ok=True)
            raise _Retry("the server refused to resume (HTTP 416); restarting") from None
        if e.code in _RETRYABLE_HTTP:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        raise _Final(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, str) or not isinstance(reason, OSError):
            raise _Retry(f"cannot connect ({reason})") from None
        raise _Retry(f"cannot connect ({reason.strerror or reason})") from None
    except ValueError as e:  # malformed URL
        raise _Final(f"invalid URL ({e})") from None
    except (TimeoutError, OSError, http.client.HTTPException) as e:
        raise _Retry(f"connection failed ({e or type(e).__name__})") from None

    with response:
        start, total = _response_range(response, have, state)
        if state.total is not None and total is not None and total != state.total:
            # the file on the server changed size between attempts: what we have is stale
            log.warning("%s changed size (%d -> %d bytes); restarting", state.url, state.total, total)
            state.part.unlink(missing_ok=True)
            state.total = total
            raise _Retry("the remote file changed; restarting")
        if total is not None:
            state.total = total
        _stream(response, state, start)


def _response_range(
    response: http.client.HTTPResponse, have: int, state: _Download
) -> tuple[int, int | None]:
    """Where this response's body starts in the file, and the file's total size if announced."""
    length_header = response.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != have:
            # a partial answer we cannot place: restart without Range
            state.use_range = False
            state.part.unlink(missing_ok=True)
            raise _Retry("the server sent an unusable partial response; restarting without resume")
        total = None if match.group(3) == "*" else int(match.group(3))
        return have, total
    if have:
        log.info("%s: the server does not resume downloads; restarting from zero", state.url)
    return 0, length


def _stream(response: http.client.HTTPResponse, state: _Download, start: int) -> None:
    done = start
    mode = "ab" if start else "wb"
    with state.part.open(mode) as out:
        if start:
            out.truncate(start)
        if state.progress is not None:
            state.progress(done, state.total)
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                raise _Retry(f"connection lost after {done} bytes ({e or type(e).__name__})") from None
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if state.progress is not None:
                state.progress(done, state.total)
            if state.total is not None and done > state.total:
                break
    if state.total is not None and done < state.total:
        raise _Retry(f"connection closed after {done} of {state.total} bytes")


def _part_size(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


__all__ = [
    "WEIGHTS_URL_ENV",
    "cache_file",
    "cached_path",
    "download_url",
    "fetch_file",
    "file_sha256",
    "is_cached",
    "place_in_cache",
    "pull",
]
