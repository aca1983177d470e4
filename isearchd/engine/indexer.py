"""The add pipeline: files -> change detection -> decode pool -> batched embedding -> committed rows.

For each file, in order:

1. stat it (size, ``mtime_ns``). A label already stored with the same size and mtime is skipped as a
   duplicate without reading the file.
2. read its bytes and hash them (blake2b-128). When the database already holds a vector for that
   content (the same picture under another label, or a touched file), the vector is reused and
   nothing is decoded.
3. otherwise decode it (``isearchd.files.images.load_image``) in a small thread pool that runs ahead of
   inference by at most ``LOOKAHEAD_ITEMS`` files (back-pressure: the walk waits for the model,
   nothing is dropped).
   While a search computes its embedding, no new file starts (``QueryGate``, bounded wait).
   Its look (perceptual hash and colours, ``isearchd.engine.looks``) is computed from the decoded
   picture; a reused vector's file is decoded at a small scale for its look alone. Then the
   picture is fitted to the model's input (``fit_image``: resize and crop, the costly part of
   preprocessing) in the same thread, leaving the model's thread only the tower to run.
4. embed decoded images in batches of ``BATCH_SIZE`` (as background work: searches waiting for the
   model go first, between small slices of a batch) and commit each batch to the database in one
   transaction; only then does a progress event count those files as done.

A video goes the same way as several frames (``isearchd.engine.videoframes``): hashed in chunks,
frames chosen, decoded and fitted in the pool, embedded with the batch, committed as its rows in
one transaction; a touched but unchanged video only has its row refreshed. It counts as one file.

A file that cannot be read or decoded, or that fails in any other way while it is prepared, is
reported with a one-line reason (``AddReport.failed``; an unexpected error's traceback goes to the
log once) and the rest of its batch is still embedded. Only a failure of the model or the store
stops the add, with that error and the number of images committed before it: those stay committed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from isearchd.engine.gate import QueryGate
from isearchd.engine.looks import look_of, look_of_file
from isearchd.engine.photometa import PhotoMeta, photo_infos, read_metadata
from isearchd.engine.places import Gazetteer
from isearchd.engine.videoframes import VideoFrames, hash_file, video_frames, video_records
from isearchd.errors import BadImage, Busy, ISearchError, StoreError
from isearchd.files.formats import is_video_name
from isearchd.files.images import NotRegularFile, content_hash, load_image, open_regular, reduced
from isearchd.files.video import VideoLimits
from isearchd.reports import AddReport, Progress

if TYPE_CHECKING:
    from isearchd.store import ImageRecord
    from isearchd.store.looks import Look
    from isearchd.store.metadata import PhotoInfo

log = logging.getLogger(__name__)

# Images per model call. 16-32 keeps the per-batch latency (and the memory of decoded images) small
# while amortising the model's per-call overhead; larger batches were no faster on CPU.
BATCH_SIZE = 32
# Decoder threads. Pillow releases the GIL while decoding, so 2-4 threads keep the model fed on a
# small machine without competing with torch's own threads for every core.
DECODE_WORKERS = min(4, max(2, (os.cpu_count() or 2) // 2))
# How many files may be read/decoded ahead of the model: two batches. Bounds memory (decoded images
# wait here) and gives back-pressure to the producer.
LOOKAHEAD_ITEMS = 2 * BATCH_SIZE


class Embedder(Protocol):
    @property
    def image_size(self) -> int: ...

    def fit_image(self, image: Image.Image) -> Image.Image: ...

    def embed_images(self, images: list[Image.Image], *, background: bool = False) -> np.ndarray: ...


class Pictures(Protocol):
    """Where the decoded pictures of new photos also go (``isearchd.engine.analysis.Analyses``)."""

    def want(self) -> int:
        """The shorter side to keep a copy at (0: none now)."""
        ...

    def keep(self, db: str, label: str, mtime_ns: int, picture: Image.Image) -> None: ...


class IndexTarget(Protocol):
    name: str

    def get(self, label: str) -> ImageRecord | None: ...

    def vector_for_hash(self, content_hash: str) -> np.ndarray | None: ...

    def add(self, records: list[ImageRecord]) -> int: ...


@dataclass(frozen=True)
class AddItem:
    """One file to add: a daemon-side ``path``, or ``data`` sent by a remote client for ``path``."""

    label: str
    path: str
    data: bytes | None = None
    size: int | None = None
    mtime_ns: int | None = None


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class _Skip:
    item: AddItem


@dataclass(frozen=True)
class _Fail:
    item: AddItem
    reason: str


@dataclass(frozen=True)
class _Ready:
    """A file ready to be committed: with a reused ``vector`` or a decoded ``image`` to embed."""

    item: AddItem
    size: int
    mtime_ns: int
    content_hash: str
    vector: np.ndarray | None = None
    image: Any = None
    unchanged: bool = False  # same content as the stored row: counted as skipped, row refreshed
    meta: PhotoMeta | None = None  # read from the bytes already in memory
    look: Look | None = None
    kept: Any = None  # a copy for the analyses that read pixels (``Pictures.want``'s side)
    video: VideoFrames | None = None  # a video's frames (``image`` None), to embed with the batch

    def pictures(self) -> list[Any]:  # what the model embeds for this file (a reused vector: none)
        frames = [f[1] for f in self.video.frames] if self.video is not None else [self.image]
        return [] if self.vector is not None else frames


@dataclass
class _Counts:
    total: int
    done: int = 0
    added: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def progress(self) -> Progress:
        return Progress(self.done, self.total, self.added, self.skipped, len(self.failed))


@dataclass
class _Run:
    """One add in progress: the files being prepared (in order), the batch waiting for the model,
    and what has been counted and reported."""

    indexer: Indexer
    counts: _Counts
    progress: ProgressFn | None
    seen: set[str] = field(default_factory=set)
    batch: list[_Ready] = field(default_factory=list)
    pending: deque[Future[_Skip | _Fail | _Ready]] = field(default_factory=deque)
    exhausted: bool = False
    unreported: int = 0

    def report(self) -> None:
        self.unreported = 0
        if self.progress is not None:
            self.progress(self.counts.progress())

    def fill(self, pool: ThreadPoolExecutor, source: Iterator[AddItem]) -> None:
        """Start preparing files until ``lookahead`` are under way (back-pressure: no more)."""
        while not self.exhausted and len(self.pending) < self.indexer.lookahead:
            item = next(source, None)
            if item is None:
                self.exhausted = True
            elif item.label in self.seen:
                self._done()
                self.counts.skipped += 1
            else:
                self.seen.add(item.label)
                self.pending.append(pool.submit(self.indexer.prepare, item))

    def _done(self) -> None:
        self.counts.done += 1
        self.unreported += 1

    def take(self, outcome: _Skip | _Fail | _Ready) -> None:
        if isinstance(outcome, _Skip):
            self.counts.skipped += 1
            self._done()
        elif isinstance(outcome, _Fail):
            log.info("not added: %s: %s", outcome.item.path, outcome.reason)
            self.counts.failed.append((outcome.item.path, outcome.reason))
            self._done()
        else:
            self.batch.append(outcome)

    def commit_if_due(self) -> None:
        to_embed = sum(len(r.pictures()) for r in self.batch)
        last = self.batch and not self.pending and self.exhausted
        if to_embed >= self.indexer.batch_size or len(self.batch) >= self.indexer.lookahead or last:
            self.commit()
        elif self.unreported >= self.indexer.batch_size:
            self.report()

    def commit(self) -> None:
        self.indexer.commit(self.batch, self.counts)
        self.batch = []
        self.report()


class Indexer:
    """Runs one add job against one database. Not shared between threads."""

    def __init__(
        self,
        model: Embedder,
        db: IndexTarget,
        *,
        batch_size: int = BATCH_SIZE,
        workers: int = DECODE_WORKERS,
        lookahead: int = LOOKAHEAD_ITEMS,
        places: Gazetteer | None = None,
        gate: QueryGate | None = None,
        analyses: Pictures | None = None,
        video: VideoLimits | None = None,
    ) -> None:
        self.model = model
        self.analyses = analyses  # the photos' pictures go to them too: each file is decoded once
        self.gate = gate  # searches in progress: each file waits for them before it starts
        self.db = db
        self.video = video or VideoLimits()  # how many frames of a video, and how long reading it may take
        self.places = places  # None: positions are stored without a place name
        self.batch_size = max(1, batch_size)
        self.workers = max(1, workers)
        self.lookahead = max(self.batch_size, lookahead)

    def run(
        self,
        items: Sequence[AddItem],
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> AddReport:
        run = _Run(self, _Counts(total=len(items)), progress)
        source = iter(items)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="isearch-decode") as pool:
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise Busy(
                            f"the daemon is shutting down; {run.counts.added} images were committed before "
                            "it stopped; run the add again to finish"
                        )
                    run.fill(pool, source)
                    if not run.pending:
                        break
                    run.take(run.pending.popleft().result())
                    run.commit_if_due()
                if run.batch:
                    run.commit()
                if run.unreported:
                    run.report()
            except StoreError as e:
                added = run.counts.added
                saved = f"{added} {'image' if added == 1 else 'images'} of this add"
                raise type(e)(f"{e.message} ({saved} were saved before it)") from e
            finally:
                for fut in run.pending:
                    fut.cancel()
        counts = run.counts
        return AddReport(added=counts.added, skipped=counts.skipped, failed=counts.failed)

    # -- steps ---------------------------------------------------------------------------------

    def prepare(self, item: AddItem) -> _Skip | _Fail | _Ready:
        """Runs in the decode pool: stat, duplicate check, read, hash, reuse or decode."""
        if self.gate is not None:
            self.gate.wait_clear()
        try:
            if is_video_name(item.path):
                return self._prepare_video(item)
            if item.data is not None:
                data = item.data
                size = len(data)
                mtime_ns = item.mtime_ns or 0
                existing = self.db.get(item.label)
                if existing is not None and existing.size == size and existing.mtime_ns == mtime_ns:
                    return _Skip(item)
            else:
                path = Path(item.path)
                st = path.stat()
                size, mtime_ns = st.st_size, st.st_mtime_ns
                existing = self.db.get(item.label)
                if existing is not None and existing.size == size and existing.mtime_ns == mtime_ns:
                    return _Skip(item)
                fh, st = open_regular(path)  # a FIFO that took the file's place never blocks
                with fh:
                    size, mtime_ns = st.st_size, st.st_mtime_ns
                    data = fh.read()
            if not data:
                return _Fail(item, "empty file")
            digest = content_hash(data)
            unchanged = existing is not None and existing.content_hash == digest
            vector = self.db.vector_for_hash(digest)
            meta = read_metadata(data, mtime_ns, item.path)
            if vector is not None:
                look = look_of_file(data, name=item.path)
                return _Ready(item, size, mtime_ns, digest, vector, unchanged=unchanged, meta=meta, look=look)
            side = self.analyses.want() if self.analyses is not None else 0
            fits = self.model.image_size  # a RAW's preview need only be big enough for the model
            image = load_image(data, min_side=max(fits, side), name=item.path, preview_side=fits)
            look = look_of(image)
            kept = reduced(image, side) if side else None
            # fitted here, in parallel, not in the model's thread; and it holds far less memory
            image = self.model.fit_image(image)
            return _Ready(item, size, mtime_ns, digest, image=image, meta=meta, look=look, kept=kept)
        except BadImage as e:
            return _Fail(item, e.reason)
        except ISearchError:
            raise
        except NotRegularFile as e:
            return _Fail(item, e.reason)
        except IsADirectoryError:
            return _Fail(item, "is a directory, not an image file")
        except FileNotFoundError:
            return _Fail(item, "file not found (removed while adding?)")
        except PermissionError:
            return _Fail(item, "permission denied")
        except OSError as e:
            return _Fail(item, f"cannot read file ({e.strerror or e})")
        except Exception as e:  # one bad file never stops the others; the log keeps the traceback
            log.exception("unexpected error while preparing %r", item.path)
            return _Fail(item, f"unexpected error ({type(e).__name__}: {e})")

    def _prepare_video(self, item: AddItem) -> _Skip | _Fail | _Ready:
        """``prepare`` for a video (same errors): hashed in chunks, frames decoded and fitted."""
        existing = self.db.get(item.label)
        if item.data is not None:
            size, mtime_ns = len(item.data), item.mtime_ns or 0
        else:
            st = Path(item.path).stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        if existing is not None and (existing.size, existing.mtime_ns) == (size, mtime_ns):
            return _Skip(item)
        if item.data is not None:
            digest = content_hash(item.data)
        else:
            fh, st = open_regular(item.path)
            with fh:
                size, mtime_ns = st.st_size, st.st_mtime_ns
                digest = hash_file(fh)
        if not size:
            return _Fail(item, "empty file")
        if existing is not None and existing.content_hash == digest and existing.vector is not None:
            return _Ready(item, size, mtime_ns, digest, existing.vector, unchanged=True)  # touched only
        source = item.data if item.data is not None else item.path
        pause = self.gate.wait_clear if self.gate is not None else None
        frames = video_frames(source, mtime_ns, self.video, self.model, item.path, pause)
        return _Ready(item, size, mtime_ns, digest, meta=frames.meta, video=frames)

    def commit(self, batch: list[_Ready], counts: _Counts) -> None:
        vectors = self._embed([r for r in batch if r.vector is None], counts)
        infos = photo_infos([r.meta for r in batch], self.places)
        records: list[ImageRecord] = []
        written = unchanged = 0
        for r, info in zip(batch, infos, strict=True):
            rows = _rows(r, info, vectors)
            if r.video is not None and not rows:
                counts.failed.append((r.item.path, "cannot embed any of its frames"))
            records += rows
            written += bool(rows)
            unchanged += bool(rows) and r.unchanged
        if records:
            self.db.add(records)
            if self.analyses is not None:
                for r in batch:
                    if r.kept is not None:
                        self.analyses.keep(self.db.name, r.item.label, r.mtime_ns, r.kept)
        counts.added += written - unchanged
        counts.skipped += unchanged
        counts.done += len(batch)

    def _embed(self, ready: list[_Ready], counts: _Counts) -> dict[tuple[int, int], np.ndarray]:
        """Embed the decoded images of a batch (a video's frames with them), keyed by (file, frame);
        a file the model rejects fails alone."""
        keyed = [((id(r), i), picture, r) for r in ready for i, picture in enumerate(r.pictures())]
        if not keyed:
            return {}
        try:
            vecs = self.model.embed_images([k[1] for k in keyed], background=True)
            return {k[0]: vecs[i] for i, k in enumerate(keyed)}
        except ISearchError:
            if len(keyed) == 1:
                raise
        except (ValueError, RuntimeError):
            if len(keyed) == 1:
                raise
            log.warning("batch of %d images failed to embed; retrying one by one", len(keyed))
        out: dict[tuple[int, int], np.ndarray] = {}
        first_error: BaseException | None = None
        for key, picture, r in keyed:
            try:
                out[key] = self.model.embed_images([picture], background=True)[0]
            except (ISearchError, ValueError, RuntimeError) as e:
                first_error = first_error or e
                if r.video is None:
                    counts.failed.append((r.item.path, f"cannot embed image ({e})"))
        if not out and first_error is not None:
            raise first_error
        return out


def _rows(r: _Ready, info: PhotoInfo | None, vectors: dict[tuple[int, int], np.ndarray]) -> list[ImageRecord]:
    """The rows a prepared file becomes (none when its embedding failed: already reported)."""
    from isearchd.store import ImageRecord

    if r.video is not None:
        found = [vectors.get((id(r), i)) for i in range(len(r.video.frames))]
        item = r.item
        return video_records(item.label, item.path, r.size, r.mtime_ns, r.content_hash, r.video, found, info)
    vec = r.vector if r.vector is not None else vectors.get((id(r), 0))
    if vec is None:
        return []
    return [
        ImageRecord(
            label=r.item.label, path=r.item.path, size=r.size, mtime_ns=r.mtime_ns,
            content_hash=r.content_hash, vector=np.asarray(vec, dtype=np.float32), info=info, look=r.look,
        )
    ]  # fmt: skip
