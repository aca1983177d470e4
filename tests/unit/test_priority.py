"""PriorityLock: queries go before queued indexing work, and indexing is never shut out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from isearchd.models.priority import PriorityLock

WAIT_S = 10  # a generous bound for a thread to reach a point; never a timing assertion


def _waiting(lock: PriorityLock, foreground: int = 0, background: int = 0) -> Callable[[], bool]:
    def check() -> bool:
        with lock._cond:
            return lock._foreground_waiting == foreground and lock._background_waiting == background

    return check


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "a thread never reached the lock"
        time.sleep(0.001)


def _start(target: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def test_a_waiting_foreground_caller_goes_before_a_queued_background_one() -> None:
    lock = PriorityLock()
    order: list[str] = []

    def run(kind: str) -> None:
        with lock.background() if kind == "background" else lock.foreground():
            order.append(kind)

    with lock.background():  # an indexing slice is running
        b = _start(lambda: run("background"))  # the next slice queues first
        _until(_waiting(lock, background=1))
        f = _start(lambda: run("foreground"))  # then a query arrives
        _until(_waiting(lock, foreground=1, background=1))
    for t in (b, f):
        t.join(WAIT_S)
    assert order == ["foreground", "background"]


def test_background_gets_a_turn_after_foreground_turns_in_a_row() -> None:
    lock = PriorityLock(foreground_turns=2)
    order: list[str] = []
    queries = 5

    def query(i: int) -> None:
        with lock.foreground():
            order.append(f"q{i}")

    def index() -> None:
        with lock.background():
            order.append("slice")

    threads = []
    with lock.foreground():  # a query runs; an indexing slice, then more queries, queue behind it
        threads.append(_start(index))
        _until(_waiting(lock, background=1))
        for i in range(queries):
            threads.append(_start(lambda i=i: query(i)))
        _until(_waiting(lock, foreground=queries, background=1))
    for t in threads:
        t.join(WAIT_S)
    assert len(order) == queries + 1
    assert order.index("slice") == 2  # two queries went first, then the slice, then the rest


def test_only_one_holder_at_a_time() -> None:
    lock = PriorityLock(foreground_turns=3)
    inside = 0
    most = 0
    count = threading.Lock()

    def work(background: bool) -> None:
        nonlocal inside, most
        for _ in range(200):
            with lock.background() if background else lock.foreground():
                with count:
                    inside += 1
                    most = max(most, inside)
                with count:
                    inside -= 1

    threads = [_start(lambda b=(i % 3 == 0): work(b)) for i in range(6)]
    for t in threads:
        t.join(WAIT_S * 3)
    assert not any(t.is_alive() for t in threads)
    assert most == 1


def test_an_error_inside_releases_the_lock() -> None:
    lock = PriorityLock()
    with pytest.raises(RuntimeError), lock.background():
        raise RuntimeError("model failed")
    with lock.foreground():
        pass
