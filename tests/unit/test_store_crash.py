"""kill -9 at random points: every acknowledged add survives, searchable, with no duplicates.

A child process adds 2,000 items in batches (and re-adds some with new vectors) while its
background saver writes the index every few hundred changes; it prints one line per batch after
``add`` returned. The parent SIGKILLs it at a random moment (after a random number of acks plus a
random delay, so some kills land mid-transaction or mid-save), reopens the database and checks.
The runs share one database, so later runs also start from a crashed state.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from isearchd.store import Database, SavePolicy

N_ITEMS = 2000
BATCH = 50
DIM = 48

CHILD = r"""
import sys
import numpy as np
from pathlib import Path
from isearchd.store import Database, ImageRecord, SavePolicy

home = Path(sys.argv[1])
run, n, batch, dim = (int(a) for a in sys.argv[2:6])
base = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
shift = np.random.default_rng(1000 + run).standard_normal((n, dim)).astype(np.float32)
db = Database.open(home, "crash", model_key="m", dim=dim,
                   save_policy=SavePolicy(max_changes=300, max_seconds=0.2, background=True))
print("OPEN", flush=True)
order = np.random.default_rng(run).permutation(n // batch)
for b in order:
    lo, hi = int(b) * batch, int(b) * batch + batch
    # odd runs move every vector a little: re-adds are updates the index must follow
    vecs = base[lo:hi] + (0.3 * shift[lo:hi] if run % 2 else 0.0)
    db.add([ImageRecord(f"img{i:05d}", f"/p/img{i:05d}.jpg", i, run, f"h{run}-{i}", vecs[i - lo])
            for i in range(lo, hi)])
    print(f"ACK {lo} {hi}", flush=True)
db.close()
print("DONE", flush=True)
"""


def run_child(home: Path, run: int, kill_after_acks: int | None, delay: float) -> tuple[set[str], bool]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(run), str(N_ITEMS), str(BATCH), str(DIM)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    acked: set[str] = set()
    acks = 0
    done = False
    for line in proc.stdout:
        parts = line.split()
        if parts[0] == "ACK":
            acked.update(f"img{i:05d}" for i in range(int(parts[1]), int(parts[2])))
            acks += 1
            if kill_after_acks is not None and acks >= kill_after_acks:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
        elif parts[0] == "DONE":
            done = True
    proc.wait(timeout=60)
    # anything the child printed before the kill but we had not read yet was acknowledged too
    for line in proc.stdout:
        parts = line.split()
        if parts and parts[0] == "ACK":
            acked.update(f"img{i:05d}" for i in range(int(parts[1]), int(parts[2])))
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    if kill_after_acks is None:
        assert proc.returncode == 0, stderr
    else:
        assert proc.returncode == -signal.SIGKILL and acks >= kill_after_acks, stderr
    return acked, done


def check(home: Path, acked: set[str]) -> int:
    with Database.open(home, "crash", model_key="m", dim=DIM, save_policy=SavePolicy(background=False)) as db:
        labels = [r.label for r in db.records()]
        assert len(labels) == len(set(labels)), "duplicate labels"
        assert acked <= set(labels), f"lost acknowledged items: {sorted(acked - set(labels))[:5]}"
        assert db.count() == len(labels) == len(db.index_ids()), "catalog and index disagree"
        for label in labels:
            rec = db.get(label)
            assert rec is not None and rec.vector is not None
            hit = db.search(rec.vector, k=1)[0]
            assert (hit.label, hit.similarity) == (label, 100.0), f"{label} not searchable by its vector"
        return len(labels)


def test_acknowledged_adds_survive_sigkill(tmp_path: Path) -> None:
    rnd = random.Random(20240601)
    batches = N_ITEMS // BATCH
    ever_acked: set[str] = set()
    for run in range(5):
        kill_after = rnd.randint(1, batches - 1)
        acked, done = run_child(tmp_path, run, kill_after, rnd.uniform(0.0, 0.03))
        ever_acked |= acked
        check(tmp_path, ever_acked)
    # a last run to completion: exactly the 2,000 labels, nothing duplicated
    acked, done = run_child(tmp_path, 5, None, 0.0)
    assert done and len(acked) == N_ITEMS
    assert check(tmp_path, acked) == N_ITEMS
    with Database.open(tmp_path, "crash", save_policy=SavePolicy(background=False)) as db:
        rec = db.get("img00007")
        assert rec is not None and rec.mtime_ns == 5  # the last run's version of the row
