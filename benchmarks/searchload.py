"""The search load of the daemon benchmarks (bench_search_during_add, bench_faces_library):
client threads, each on its own connection, searching by text and by image on a schedule.

Each client's searches are due ``think_ms`` apart on average (exponential gaps, fixed in advance
of the answers: a slow answer does not thin the load; ``think_ms`` 0 sends them back to back).
A search is by image (a path among ``queries``) with probability ``image_share``, else by text
(bench_e2e's 64 texts, so the daemon's text cache answers most of them, as it would for people
retyping a query). Errors are counted, never hidden.

    load = SearchLoad(lambda: daemon.client("db"), endless(32, queries, 0.25), think_ms=1000)
    t0 = load.start()  # every client connected; their searches start now
    ...
    load.stop()  # or load.join(): until the clients' planned searches are done
    latencies(load.records, t0, time.perf_counter())
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from bench_e2e import TEXT_QUERIES

from isearchd.client import Client


class Search(NamedTuple):
    t: float  # time.perf_counter() at its start
    kind: str  # "text" or "image"
    ms: float
    error: str | None  # "Type: message" of what it raised


def draw(rng: random.Random, queries: list[Path], image_share: float) -> tuple[str, str]:
    """One search: ("image", path) or ("text", text)."""
    if rng.random() < image_share:
        return "image", str(rng.choice(queries))
    return "text", rng.choice(TEXT_QUERIES)


def planned(
    searches: int, clients: int, queries: list[Path], image_share: float, seed: int
) -> list[list[tuple[str, str]]]:
    """``searches`` searches drawn in advance, dealt out to ``clients`` clients in turn."""
    rng = random.Random(seed)
    plan = [draw(rng, queries, image_share) for _ in range(searches)]
    return [plan[i::clients] for i in range(clients)]


def endless(
    clients: int, queries: list[Path], image_share: float, seed: int = 0
) -> list[Iterator[tuple[str, str]]]:
    """Each of ``clients`` clients' searches, drawn as they are made (client ``i``'s from
    ``random.Random(seed + i)``), until the load is stopped."""

    def searches(rng: random.Random) -> Iterator[tuple[str, str]]:
        while True:
            yield draw(rng, queries, image_share)

    return [searches(random.Random(seed + i)) for i in range(clients)]


class SearchLoad:
    """One thread per entry of ``work`` (that client's searches, made in order), each on its own
    connection from ``connect``. Client ``i`` draws its gaps from ``random.Random(seed + i)``.
    Every search lands in ``records``."""

    def __init__(
        self,
        connect: Callable[[], Client],
        work: Sequence[Iterable[tuple[str, str]]],
        *,
        think_ms: float,
        seed: int = 0,
    ) -> None:
        self.records: list[Search] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Barrier(len(work) + 1)
        self._threads = [
            threading.Thread(target=self._loop, args=(connect, searches, think_ms, seed + i))
            for i, searches in enumerate(work)
        ]
        for t in self._threads:
            t.start()

    def start(self) -> float:
        """Wait until every client is connected, let them go; the time they go (perf_counter).
        Raises ``threading.BrokenBarrierError`` when a client could not connect."""
        self._ready.wait()
        return time.perf_counter()

    def _loop(
        self, connect: Callable[[], Client], searches: Iterable[tuple[str, str]], think_ms: float, seed: int
    ) -> None:
        pause = random.Random(seed)
        try:
            c = connect()
        except BaseException:
            self._ready.abort()  # start() raises instead of waiting for this client forever
            raise
        with c:
            self._ready.wait()
            due = time.perf_counter()
            for kind, query in searches:
                if think_ms > 0:  # arrivals on a schedule: a slow answer does not thin the load
                    due += pause.expovariate(1000 / think_ms)
                if self._stop.wait(max(0.0, due - time.perf_counter())):
                    break
                t = time.perf_counter()
                error = None
                try:
                    c.search(query, num=10)
                except Exception as e:  # counted, never hidden
                    error = f"{type(e).__name__}: {e}"
                with self._lock:
                    self.records.append(Search(t, kind, (time.perf_counter() - t) * 1000, error))

    def join(self) -> None:
        """Wait until every client has made its searches."""
        for t in self._threads:
            t.join()

    def stop(self) -> None:
        """End every client (after its search in flight, if any); wait for them."""
        self._stop.set()
        self.join()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latencies(
    records: list[Search], start: float = float("-inf"), end: float = float("inf")
) -> dict[str, Any]:
    """For the searches started in [start, end): how many, the errors, and p50 / p95 / p99 ms
    of the answered ones by kind."""
    window = [r for r in records if start <= r.t < end]
    out: dict[str, Any] = {"searches": len(window), "errors": sum(r.error is not None for r in window)}
    for kind in ("text", "image"):
        ms = [r.ms for r in window if r.kind == kind and r.error is None]
        out[kind] = {"count": len(ms)}
        for q in (50, 95, 99):
            p = percentile(ms, q)
            out[kind][f"p{q}_ms"] = None if p is None else round(p, 1)
    return out
