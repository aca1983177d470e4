"""What the Qdrant store adds to the shared contract (test_store_contract.py): store URLs, point
ids (idempotent upserts, image ids that never clash), many machines writing one collection (two
engines sharing one local-mode client in one process stand in for two machines), and a folder
in local mode belonging to one client."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from store_backends import DIM, records, unit

from isearchd.engine.dups import DupRules
from isearchd.engine.engine import Engine
from isearchd.errors import ConfigError, StoreError
from isearchd.store import ImageRecord, qdrant_points
from isearchd.store.qdrant_link import QdrantLink, parse_url
from isearchd.store.qdrant_store import QdrantStore


def test_store_urls() -> None:
    assert parse_url("qdrant://db.example:6333").server == "http://db.example:6333"
    assert parse_url("qdrant://db.example").server == "http://db.example:6333"
    assert parse_url("qdrants://db.example:443/").server == "https://db.example:443"
    local = parse_url("qdrant:///var/lib/isearch/q")
    assert (local.server, local.path) == (None, Path("/var/lib/isearch/q"))
    for bad in ("http://x:6333", "qdrant://", "qdrant://relative/path", "qdrant://h:1/p", "qdrant://h?x=1",
                "qdrant://h:port"):  # fmt: skip
        with pytest.raises(ConfigError):
            parse_url(bad)


# qdrant-client leaves the lock file of a refused open unclosed (its own file object)
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_local_folder_belongs_to_one_client_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    url = f"qdrant://{tmp_path}/q"
    v = unit(np.random.default_rng(1), 5)
    first = QdrantStore(QdrantLink.connect(url), host="alpha")
    first.open("t", model_key="m", dim=DIM, create=True).add(records(v))
    with pytest.raises(StoreError, match="cannot open the Qdrant store"):
        QdrantLink.connect(url)
    first.close()
    again = QdrantStore(QdrantLink.connect(url), host="alpha")
    db = again.open("t", model_key="m", dim=DIM, create=False)
    assert db.count() == 5 and db.search(v[3], k=1)[0].label == "/photos/00003.jpg"
    again.close()


def test_image_ids_never_clash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = QdrantStore(QdrantLink.connect(f"qdrant://{tmp_path}/q"), host="alpha")
    db = store.open("t", model_key="m", dim=DIM, create=True)
    v = np.abs(unit(np.random.default_rng(2), 3))  # every hit above 0 %
    real = qdrant_points.image_id
    monkeypatch.setattr(
        qdrant_points, "image_id", lambda host, label, salt=0: 42 if salt == 0 else real(host, label, salt)
    )
    db.add(records(v[:1]))
    db.add(records(v[1:], start=1))  # both first choose 42, which is taken
    ids = {h.label: h.id for h in db.search(v[0], k=3)}
    assert len(set(ids.values())) == 3 and ids["/photos/00000.jpg"] == 42
    db.add(records(v[:1]))  # a re-add keeps its id
    assert db.search(v[0], k=1)[0].id == 42
    store.close()


class FakeModel:
    """A model whose image embedding is a fixed function of the pixels (as a real model is)."""

    key = "fake"
    dim = DIM
    image_size = 8

    def fit_image(self, image: Image.Image) -> Image.Image:
        return image  # embeds any size alike: nothing to fit

    def embed_images(self, images: list[Image.Image], *, background: bool = False) -> np.ndarray:
        out = []
        for img in images:
            seed = int.from_bytes(img.convert("RGB").resize((4, 4)).tobytes()[:8], "little")
            out.append(unit(np.random.default_rng(seed), 1)[0])
        return np.stack(out)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return unit(np.random.default_rng(len(texts[0])), 1)


def write_images(folder: Path, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_two_machines_write_one_collection_at_once(tmp_path: Path) -> None:
    """Two engines (hosts "alpha" and "beta"), one shared local client, the same folder path on
    both machines: concurrent adds give exact counts, each machine's paths stay its own, and a
    search from either sees everything, naming the other machine on its images."""
    link = QdrantLink.connect(f"qdrant://{tmp_path}/q")
    homes = {h: tmp_path / h for h in ("alpha", "beta")}
    engines = {
        h: Engine(FakeModel(), homes[h], batch_size=7, store=QdrantStore(link, host=h))
        for h in ("alpha", "beta")
    }
    for h, seed in (("alpha", 1), ("beta", 2)):
        write_images(tmp_path / h / "photos", 40, seed)
    errors: list[BaseException] = []

    def add(host: str) -> None:
        try:
            for _ in range(2):  # the second time: nothing new (an idempotent re-add)
                engines[host].add_paths("lib", [str(homes[host] / "photos")])
        except BaseException as exc:  # report it in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(h,)) for h in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    alpha, beta = (engines[h].database("lib", create=False) for h in ("alpha", "beta"))
    assert alpha.count() == beta.count() == 80
    assert alpha.count_below(str(homes["alpha"] / "photos")) == 40
    assert len(list(beta.records())) == 40 and all(r.host is None for r in beta.records())
    # the same path on both machines (a label both use) is two images, one per machine
    same = "/srv/shared/x.png"
    vec = unit(np.random.default_rng(3), 2)
    alpha.add([ImageRecord(same, same, 1, 1, "hx", vec[0])])
    beta.add([ImageRecord(same, same, 2, 2, "hy", vec[1])])
    assert alpha.count() == 82
    got = alpha.get(same)
    assert got is not None and got.content_hash == "hx"
    hit = beta.search(vec[0], k=1)[0]
    assert (hit.path, hit.host) == (same, "alpha")
    assert beta.search(vec[1], k=1)[0].host is None
    # each machine deletes only its own
    assert beta.delete_prefix("/srv/shared") == 1 and alpha.count() == 81
    assert engines["alpha"].image("lib", hit.id or 0).host is None
    assert engines["beta"].image("lib", hit.id or 0).host == "alpha"
    assert engines["beta"].dups("lib", DupRules()) == []  # random pictures: no duplicates
    for e in engines.values():
        e.close()  # both close the shared link: the second does nothing
