"""Checkpoints read without torch (``isearchd.models.torchzip``): equal to ``torch.load``, bit for bit,
in every layout of every architecture; hostile files refused with one line, nothing run or written."""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import tempfile
import tracemalloc
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from isearchd.errors import ModelError
from isearchd.models.checkpoint import normalise_keys, read_state_dict
from isearchd.models.registry import MODELS
from isearchd.models.synthetic import official_checkpoint
from isearchd.models.torchzip import MAX_DEPTH, read_checkpoint

ARCHS = sorted({spec.arch for spec in MODELS.values()})


def assert_same(ours: object, theirs: object, where: str = "") -> None:
    """``ours`` (read_checkpoint) holds what ``theirs`` (torch.load) holds: arrays bit for bit."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, np.ndarray), where
        expected = theirs.detach()
        if expected.dtype == torch.bfloat16:
            expected = expected.float()  # numpy has no bfloat16: widened, exactly
        want = expected.numpy()
        assert (ours.dtype, ours.shape) == (want.dtype, want.shape), where
        if ours.size:
            assert ours.strides == want.strides, where
        if ours.flags.c_contiguous and want.flags.c_contiguous:  # bits, without copies
            assert np.array_equal(ours.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8)), where
        else:
            assert ours.tobytes() == want.tobytes(), where
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for key, value in theirs.items():
            assert_same(ours[key], value, f"{where}/{key}")
    elif isinstance(theirs, list | tuple):
        assert isinstance(ours, list | tuple) and type(ours) is type(theirs), where
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


# --- equality with torch.load -----------------------------------------------------------------


def check_layout(path: Path, layout: str) -> None:
    """read_checkpoint equals torch.load; read_state_dict what it gave when it used torch.load."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert_same(read_checkpoint(path), loaded, path.name)
    tensors = loaded.get("state_dict", loaded)
    want, _ = normalise_keys({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    arrays, found = read_state_dict(path)
    assert found == layout
    assert_same(arrays, want, path.name)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_reads_as_torch_load_does(arch: str, tmp_path: Path) -> None:
    """The official layout (manual or auto) of each of the 9 architectures behind the 11 keys."""
    torch.save(official_checkpoint(arch, seed=1), tmp_path / "official.pt")
    check_layout(tmp_path / "official.pt", "auto" if "-auto-" in arch else "manual")


@pytest.mark.parametrize("key", ["ViT-8Y", "RN-19L", "ViT-22L"])
def test_plain_open_clip_layout_reads_as_torch_load_does(key: str, tmp_path: Path) -> None:
    """What torch.save(clip.state_dict()) writes, here behind DDP's "module." prefix: an
    OrderedDict with _metadata; one tensor a strided view, as a transpose is. A ViT, a ResNet
    (int64 BatchNorm counters) and a pruned model."""
    plain, _ = normalise_keys(official_checkpoint(key, seed=2)["state_dict"])
    state = collections.OrderedDict(("module." + k, v) for k, v in plain.items())
    state._metadata = collections.OrderedDict({"": {"version": 1}})  # type: ignore[attr-defined]
    state["module.text_projection"] = plain["text_projection"].t().contiguous().t()
    torch.save(state, tmp_path / "plain.pt")
    check_layout(tmp_path / "plain.pt", "open_clip")


def test_dtypes_views_parameters_and_metadata(tmp_path: Path) -> None:
    base = torch.randn(5, 6)
    tree = {
        "state_dict": collections.OrderedDict(
            w=base,
            row=base[2],  # a view sharing base's storage, at an offset
            t=base.t(),
            half=torch.randn(3).half(),
            bf16=torch.randn(3).bfloat16(),
            double=torch.randn(2).double(),
            steps=torch.tensor(7),
            mask=torch.tensor([True, False]),
            empty=torch.zeros(0, 4),
            param=torch.nn.Parameter(torch.randn(2)),
        ),
        "epoch": 3,
        "name": "run",
        "lr": [0.5, None, True, (1, 2)],
    }
    torch.save(tree, tmp_path / "x.pt")
    ours = read_checkpoint(tmp_path / "x.pt")
    assert_same(ours, torch.load(tmp_path / "x.pt", weights_only=True))
    assert isinstance(ours, dict) and np.shares_memory(ours["state_dict"]["w"], ours["state_dict"]["row"])


def test_big_endian_files_are_swapped(tmp_path: Path) -> None:
    values = np.arange(6, dtype=np.float32) - 2.5
    path = craft(
        tmp_path / "be.pt", {"w": View("0", 6, 0, (2, 3), (3, 1))}, {"0": values.byteswap().tobytes()}
    )
    rewrite_member(path, "archive/byteorder", b"big")
    assert_same(read_checkpoint(path), {"w": torch.from_numpy(values.reshape(2, 3))})


# --- hand-made files --------------------------------------------------------------------------


class View:
    """Pickles as torch does a tensor: _rebuild_tensor_v2 over a persistent storage id."""

    def __init__(
        self, key: str, numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage = ("storage", torch.FloatStorage, key, "cpu", numel)
        self.args = (offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch._utils._rebuild_tensor_v2, (StorageRef(self.storage), *self.args))


class StorageRef:
    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, StorageRef) else None


def craft(path: Path, tree: object, storages: dict[str, bytes]) -> Path:
    """A zip checkpoint as torch lays it out, with ``tree`` pickled and ``storages`` as members."""
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2, fix_imports=False).dump(tree)  # the real module names
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        zf.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            zf.writestr(f"archive/data/{key}", data)
        zf.writestr("archive/version", "3\n")
    return path


def rewrite_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w") as zf:
        for member, content in members.items():
            zf.writestr(member, content)


def test_crafted_file_matches_torch(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.float32)
    path = craft(tmp_path / "ok.pt", {"w": View("0", 12, 2, (2, 3), (4, 1))}, {"0": values.tobytes()})
    assert_same(read_checkpoint(path), torch.load(path, weights_only=True))


class Payload:
    """An object whose unpickling calls ``call(*args)``: what a malicious checkpoint carries."""

    def __init__(self, call: Any, *args: Any) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.call, self.args)


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch marker",))


def hostile_files(folder: Path) -> Iterator[tuple[Path, str]]:
    """(file, what its error must say) for each hostile or broken checkpoint."""
    marker = folder / "marker"
    ok = np.zeros(4, dtype=np.float32).tobytes()
    payloads = {
        "system": (Payload(os.system, f"touch {marker}"), "posix.system"),
        "eval": (Payload(eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
        "popen": (Payload(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
        "reduce": (Evil(), "posix.system"),
        "class": ({"x": collections.Counter("ab")}, "collections.Counter"),
        "getattr": ({"m": Payload(getattr, "x", "upper")}, "builtins.getattr"),
        "dict-args": ({"w": Payload(collections.OrderedDict, [("a", 1)])}, "OrderedDict built from"),
    }
    for name, (tree, reason) in payloads.items():
        yield craft(folder / f"{name}.pt", {"state_dict": tree}, {}), reason
    torch.save(torch.nn.Linear(2, 2), folder / "whole-module.pt")
    yield folder / "whole-module.pt", "torch.nn.modules.linear.Linear"
    views = {
        "huge": ({"w": View("0", 10**12, 0, (10**12,), (1,))}, "declares 1000000000000 elements"),
        "truncated": ({"w": View("0", 8, 0, (8,), (1,))}, "its member has 16 bytes"),
        "beyond": ({"w": View("0", 4, 2, (3,), (1,))}, "reaches past its storage"),
        "strided-beyond": ({"w": View("0", 4, 0, (2, 2), (3, 1))}, "reaches past its storage"),
        "broadcast": ({"w": View("0", 4, 0, (10**9, 4), (0, 1))}, "more elements than its storage"),
        "missing": ({"w": View("1", 4, 0, (4,), (1,))}, "has no archive/data/1"),
        "bare-storage": ({"w": StorageRef(("storage", torch.FloatStorage, "0", "cpu", 4))}, "type _Storage"),
        "other-pid": ({"w": StorageRef(("module", "os"))}, "unknown persistent id"),
    }
    for name, (tree, reason) in views.items():
        yield craft(folder / f"{name}.pt", tree, {"0": ok}), reason
    deep: list[Any] = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    yield craft(folder / "deep.pt", {"x": deep}, {}), "nested more than"
    bomb = craft(folder / "bomb.pt", {"w": View("0", 1 << 24, 0, (1 << 24,), (1,))}, {})
    add_bomb(bomb, 1 << 26)
    yield bomb, "is compressed"
    (folder / "text.pt").write_bytes(b"this is not a checkpoint\n")
    yield folder / "text.pt", "not a zip archive"
    (folder / "empty.pt").write_bytes(b"")
    yield folder / "empty.pt", "not a zip archive"
    with zipfile.ZipFile(folder / "nopickle.pt", "w") as zf:
        zf.writestr("archive/version", "3")
    yield folder / "nopickle.pt", "has no archive/data.pkl"
    torch.save({"w": torch.zeros(2)}, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    yield folder / "legacy.pt", "legacy (pre-1.6) format"


def add_bomb(path: Path, size: int) -> None:
    """Add a deflated storage member of ``size`` zero bytes (a few KB on disk)."""
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", bytes(size))


def test_hostile_files_are_refused_with_one_line_nothing_run_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    monkeypatch.chdir(folder)  # where Evil's "touch marker" would land
    cases = list(hostile_files(folder))
    before = sorted(folder.iterdir())
    for path, reason in cases:
        tracemalloc.start()
        with pytest.raises(ModelError) as err:
            read_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        message = err.value.message
        assert reason in message and str(path) in message, (path.name, message)
        assert "\n" not in message and len(message) < 400, message
        assert peak < 4 << 20, (path.name, peak)  # sizes are checked before anything is allocated
    assert not (folder / "marker").exists()
    assert sorted(folder.iterdir()) == before


# --- damaged files: refused or read unchanged, never anything else --------------------------


@cache
def small_checkpoint() -> bytes:
    buffer = io.BytesIO()
    gen = torch.Generator().manual_seed(0)
    state = {"a.weight": torch.randn(3, 4, generator=gen), "a.n": torch.tensor(5), "b": torch.randn(2).half()}
    torch.save({"state_dict": state, "epoch": 2}, buffer)
    return buffer.getvalue()


def read_bytes(data: bytes) -> object:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.pt"
        path.write_bytes(data)
        return read_checkpoint(path)


@cache
def small_arrays() -> object:
    return read_bytes(small_checkpoint())


@settings(max_examples=50, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes_are_refused_or_change_nothing(flips: list[tuple[int, int]]) -> None:
    data = bytearray(small_checkpoint())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    check_damaged(bytes(data))


@settings(max_examples=50, deadline=None)
@given(keep=st.integers(0, 10**9))
def test_truncated_files_are_refused(keep: int) -> None:
    data = small_checkpoint()
    check_damaged(data[: keep % len(data)])


def check_damaged(data: bytes) -> None:
    want = small_arrays()
    try:
        got = read_bytes(data)
    except ModelError as err:
        assert "\n" not in err.message
        return
    assert isinstance(got, dict) and isinstance(want, dict)
    assert list(got) == list(want) and got["epoch"] == want["epoch"]
    for key, value in want["state_dict"].items():
        assert got["state_dict"][key].tobytes() == value.tobytes()


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """Control for the test above: the plain unpickler runs the same payload."""
    marker = tmp_path / "marker"
    path = craft(tmp_path / "system.pt", {"state_dict": Payload(os.system, f"touch {marker}")}, {})
    with zipfile.ZipFile(path) as zf:
        pickle.loads(zf.read("archive/data.pkl"))
    assert marker.exists()
