"""Reading ``torch.save`` checkpoints without torch, and without torch's unpickler.

A checkpoint is a zip archive (torch >= 1.6 writes nothing else by default) whose members sit
under one top folder (the saved file's stem, often ``archive/``)::

    <top>/data.pkl       the object tree, pickled; tensors are persistent ids naming a storage
    <top>/data/<key>     one storage each: raw little-endian elements, stored (not compressed)
    <top>/byteorder      "little" or "big" (older torch wrote none: little)
    <top>/version        the archive format version (torch 2.x writes 3)

``read_checkpoint`` turns one into plain Python: dicts, lists, tuples, str, int, float, bool,
None, and a ``numpy.ndarray`` per tensor, with the values, shapes and strides ``torch.load``
gives (bfloat16, which numpy lacks, is widened to float32, exactly). The legacy pre-1.6 format
(a bare pickle followed by raw storages) is refused with its own message: the TinyCLIP model zoo
published its checkpoints in 2023, from open_clip-based training code on torch 1.x/2.x, long after
zip became the default, and the random checkpoints in the official layouts
(``isearchd.models.synthetic``) are zip files too. Re-saving an old file with any torch >= 1.6
makes it readable.

Safety: unpickling is where an untrusted file could run code, so ``_Unpickler.find_class``
resolves only an allow-list, and each allowed name maps to a function of ours, never to the real
global:

- ``collections.OrderedDict`` -> an empty dict (``state_dict()`` pickles one, with its
  ``_metadata`` as state, which is dropped);
- ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> a numpy view of a storage,
  after checking that the view (offset, sizes, strides) lies inside it;
- ``torch.<T>Storage`` for the dtypes numpy holds exactly (``_STORAGES``) -> an inert marker.

Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, a class whose
``__reduce__`` names one) is refused with ``ModelError`` naming it; nothing is called before the
name is checked. Sizes are checked before anything is allocated: a storage must be a stored
(uncompressed, so no zip bomb) member whose size is exactly its declared element count x item
size and which lies inside the file; all storages together may not exceed the file's size
(members that overlap cannot multiply it); the pickle is at most ``MAX_PICKLE_BYTES`` and the
object tree at most ``MAX_DEPTH`` deep. zip's CRC-32 is checked on every member read, so a
flipped byte in a storage is refused rather than loaded. Nothing is written anywhere.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from isearchd.errors import ModelError

__all__ = ["MAX_DEPTH", "MAX_PICKLE_BYTES", "read_checkpoint"]

Array = npt.NDArray[Any]

# data.pkl of the largest TinyCLIP checkpoint (ViT-63L, ~600 tensors) is about 60 KB; with an
# optimizer state beside it a few times that. 8 MiB leaves 100x room and bounds what a hostile
# pickle can make the unpickler build (about 8 bytes of pointers per byte of opcodes).
MAX_PICKLE_BYTES = 8 << 20
# {"state_dict": {name: tensor}} is 2 deep, an optimizer state 5; cycles and hostile nesting stop here.
MAX_DEPTH = 32
# Tensors in the checkpoints we know have at most 4 dimensions (convolution weights).
MAX_DIMS = 16
# byteorder and version are a few bytes; anything larger is not a torch archive.
_SMALL_MEMBER = 64
# The format versions torch's own reader accepts (caffe2/serialize/versions.h: 1 to 0xA).
_VERSIONS = range(1, 11)
# Storages are read in chunks this big.
_CHUNK = 16 << 20
# A zip member's local header: signature, versions, flags, method, time, date, CRC, sizes, name
# and extra-field lengths (the data follows the name and the extra field).
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
# torch < 1.6 files start with a pickled magic number (protocol 2, LONG1 of 10 bytes).
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_STORAGE_KEY = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` & co. unpickle to: a name and its numpy dtype, not callable."""

    name: str
    dtype: np.dtype[Any]
    bfloat16: bool = False  # stored as uint16, widened to float32 when a tensor is made


def _storage_types() -> dict[str, _StorageType]:
    # FloatStorage (weights) and LongStorage (BatchNorm's num_batches_tracked) are what TinyCLIP
    # and open_clip state dicts hold; Half/BFloat16 come from half-precision saves; the rest are
    # plain numbers a buffer may hold. All are data: the danger is in callables, not in dtypes.
    table = {
        "FloatStorage": np.float32,
        "HalfStorage": np.float16,
        "DoubleStorage": np.float64,
        "LongStorage": np.int64,
        "IntStorage": np.int32,
        "ShortStorage": np.int16,
        "CharStorage": np.int8,
        "ByteStorage": np.uint8,
        "BoolStorage": np.bool_,
    }
    types = {name: _StorageType(name, np.dtype(dtype)) for name, dtype in table.items()}
    types["BFloat16Storage"] = _StorageType("BFloat16Storage", np.dtype(np.uint16), bfloat16=True)
    return types


_STORAGES = _storage_types()


class _Refused(Exception):
    """The file is readable but not what a checkpoint may hold; the message says what."""


class _Inert:
    """Objects the unpickler hands around; BUILD (``__setstate__``) on them is refused."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Refused(f"unexpected object state on a {type(self).__name__.strip('_').lower()}")


class _Storage(_Inert):
    __slots__ = ("array", "kind")

    def __init__(self, kind: _StorageType, array: Array) -> None:
        self.kind = kind
        self.array = array


class _Tensor(_Inert):
    __slots__ = ("array",)

    def __init__(self, array: Array) -> None:
        self.array = array


class _Dict(dict[Any, Any]):
    """An unpickled ``OrderedDict``: a dict that accepts (and drops) ``state_dict()``'s ``_metadata``."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise _Refused("unexpected object state on an OrderedDict")


def _ordered_dict(*args: object) -> _Dict:
    if args:
        raise _Refused("an OrderedDict built from arguments")
    return _Dict()


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > MAX_DIMS:
        raise _Refused(f"a tensor's {what} is not a tuple of at most {MAX_DIMS} integers")
    if not all(type(v) is int and v >= 0 for v in value):
        raise _Refused(f"a tensor's {what} holds a value that is not a non-negative integer")
    return value


def _rebuild_tensor(
    storage: object,
    offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    metadata: object = None,
) -> _Tensor:
    """``torch._utils._rebuild_tensor_v2``: a view of ``storage``, checked to lie inside it."""
    if not isinstance(storage, _Storage):
        raise _Refused("a tensor whose storage is not a storage")
    if type(offset) is not int or offset < 0 or not isinstance(requires_grad, bool):
        raise _Refused("a tensor with a malformed storage offset or requires_grad flag")
    if backward_hooks or not (metadata is None or isinstance(metadata, dict)):
        raise _Refused("a tensor with backward hooks or malformed metadata")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise _Refused(f"a tensor with {len(shape)} sizes but {len(strides)} strides")
    available = storage.array.shape[0]
    numel = math.prod(shape)
    end = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1 if numel else offset
    if end > available:
        raise _Refused(
            f"a tensor of shape {list(shape)} at offset {offset} reaches past its storage "
            f"of {available} elements"
        )
    if numel > available:  # a broadcast (stride 0) view: a state dict holds none, and copies would blow up
        raise _Refused(f"a tensor of shape {list(shape)} has more elements than its storage of {available}")
    base = storage.array[offset:]
    if numel:
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(base, shape=shape, strides=[s * item for s in strides])
    else:  # nothing to view, and strides that need not fit a C integer
        view = np.zeros(shape, dtype=base.dtype)
    if storage.kind.bfloat16:  # the top half of a float32: widening is exact
        view = (view.astype(np.uint32) << 16).view(np.float32)
    return _Tensor(view)


def _rebuild_parameter(data: object, requires_grad: object, backward_hooks: object) -> _Tensor:
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor here."""
    if not isinstance(data, _Tensor) or not isinstance(requires_grad, bool) or backward_hooks:
        raise _Refused("a malformed parameter")
    return data


_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): kind for name, kind in _STORAGES.items()},
}


class _Archive:
    """The zip members of one checkpoint, read with the size checks the module docstring lists."""

    def __init__(self, zf: zipfile.ZipFile, fp: io.BufferedReader, file_size: int) -> None:
        self.zf = zf
        self.fp = fp  # the file zf reads too; zipfile seeks before each of its own reads
        self.file_size = file_size
        first = zf.infolist()[0].filename if zf.infolist() else ""
        self.top = first.split("/", 1)[0]
        self.storage_bytes = 0

    def member(self, name: str) -> zipfile.ZipInfo:
        try:
            info = self.zf.getinfo(f"{self.top}/{name}")
        except KeyError:
            raise _Refused(f"the archive has no {self.top}/{name}") from None
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _Refused(f"{info.filename} is compressed (torch stores its members uncompressed)")
        if info.header_offset + info.file_size > self.file_size:
            raise _Refused(f"{info.filename} reaches past the end of the file (truncated?)")
        return info

    def read_into(self, info: zipfile.ZipInfo, out: Array) -> None:
        """Fill ``out`` (uint8, exactly the member's size) with the member's bytes; CRC checked.

        Straight from the file into ``out`` (zipfile's reader copies every chunk twice: 2.5x slower
        on ViT-63L's 470 MB)."""
        fp = self.fp
        fp.seek(info.header_offset)
        local = fp.read(_LOCAL_HEADER.size)
        if len(local) != _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
            raise _Refused(f"{info.filename} has no local header where the directory says")
        name_length, extra_length = _LOCAL_HEADER.unpack(local)[-2:]
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        if start + info.file_size > self.file_size:
            raise _Refused(f"{info.filename} reaches past the end of the file (truncated?)")
        fp.seek(start)
        view = out.data.cast("B")
        done = 0
        while done < len(view):
            got = fp.readinto(view[done : done + _CHUNK])
            if not got:
                raise _Refused(f"{info.filename} is truncated")
            done += got
        if zlib.crc32(view) != info.CRC:
            raise _Refused(f"{info.filename} fails its CRC-32 check (a damaged file)")

    def small(self, name: str) -> bytes | None:
        if f"{self.top}/{name}" not in self.zf.namelist():
            return None
        info = self.member(name)
        if info.file_size > _SMALL_MEMBER:
            raise _Refused(f"{info.filename} has {info.file_size} bytes, not a few")
        return self.zf.read(info)

    def storage(self, kind: _StorageType, key: str, numel: int) -> Array:
        info = self.member(f"data/{key}")
        nbytes = numel * kind.dtype.itemsize
        if info.file_size != nbytes:
            raise _Refused(
                f"storage {key} declares {numel} elements of {kind.name} ({nbytes} bytes) "
                f"but its member has {info.file_size} bytes"
            )
        self.storage_bytes += nbytes
        if self.storage_bytes > self.file_size:
            raise _Refused("the storages add up to more bytes than the file has")
        raw = np.empty(nbytes, dtype=np.uint8)
        self.read_into(info, raw)
        return raw.view(kind.dtype)


class _Unpickler(pickle.Unpickler):
    """Resolves only ``_GLOBALS``; persistent ids become storages read from the archive."""

    def __init__(self, data: bytes, archive: _Archive, big_endian: bool) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.archive = archive
        self.big_endian = big_endian
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise _Refused(
                f"refusing to unpickle {module}.{name}: a checkpoint may hold only tensors, "
                "(ordered) dicts, lists, numbers and strings"
            )
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Refused(f"unknown persistent id {str(pid)[:80]!r}")
        _, kind, key, location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(location, str):
            raise _Refused("a storage of an unknown type")
        if not isinstance(key, str) or not _STORAGE_KEY.fullmatch(key):
            raise _Refused(f"a storage with a malformed key {str(key)[:40]!r}")
        if type(numel) is not int or numel < 0:
            raise _Refused(f"storage {key} declares a malformed size")
        known = self.storages.get(key)
        if known is not None:
            if known.kind != kind or known.array.shape[0] != numel:
                raise _Refused(f"storage {key} is declared twice with different types or sizes")
            return known
        array = self.archive.storage(kind, key, numel)
        if self.big_endian:
            array.byteswap(inplace=True)
        self.storages[key] = _Storage(kind, array)
        return self.storages[key]


def _plain(obj: object, depth: int, seen: dict[int, object]) -> object:
    """The unpickled tree as plain Python and ndarrays; refuses bare storages, sets, bytes, ..."""
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    if depth > MAX_DEPTH:
        raise _Refused(f"the object tree is nested more than {MAX_DEPTH} deep")
    done = seen.get(id(obj))
    if done is not None:
        return done
    out: object
    if isinstance(obj, _Tensor):
        out = obj.array
    elif isinstance(obj, dict):  # a dict or an OrderedDict (_Dict): nothing else subclasses dict here
        mapping: dict[object, object] = {}
        for key, value in obj.items():
            if key is not None and type(key) not in (str, int, float, bool):
                raise _Refused(f"a dict key of type {type(key).__name__}")
            mapping[key] = _plain(value, depth + 1, seen)
        out = mapping
    elif isinstance(obj, list | tuple):
        items = [_plain(value, depth + 1, seen) for value in obj]
        out = items if type(obj) is list else tuple(items)
    else:
        raise _Refused(f"a value of type {type(obj).__name__} (only tensors and plain containers)")
    seen[id(obj)] = out
    return out


def _header(path: Path) -> tuple[bytes, int]:
    try:
        with path.open("rb") as fp:
            return fp.read(len(_LEGACY_MAGIC)), path.stat().st_size
    except FileNotFoundError:
        raise ModelError(f"{path}: checkpoint file does not exist") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None


def _read(fp: io.BufferedReader, file_size: int) -> object:
    zf = zipfile.ZipFile(fp)
    archive = _Archive(zf, fp, file_size)
    order = archive.small("byteorder")
    if order not in (None, b"little", b"big"):
        raise _Refused(f"unknown byte order {order[:16]!r}")
    version = archive.small("version")
    if version is not None and not (version.strip().isdigit() and int(version) in _VERSIONS):
        raise _Refused(f"unknown archive format version {version[:16]!r}")
    info = archive.member("data.pkl")
    if info.file_size > MAX_PICKLE_BYTES:
        raise _Refused(f"data.pkl has {info.file_size} bytes (at most {MAX_PICKLE_BYTES} are read)")
    tree = _Unpickler(zf.read(info), archive, big_endian=order == b"big").load()
    return _plain(tree, 0, {})


# What malformed zip or pickle bytes make zipfile and the unpickler raise (besides _Refused).
_MALFORMED = (
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    ArithmeticError,
    RuntimeError,
)


def check_header(path: Path) -> int:
    """The file's size if it starts as a torch zip checkpoint; ``ModelError`` naming the file else.

    Reads a few bytes: a quick first check before work that takes seconds."""
    head, size = _header(path)
    if head.startswith(_LEGACY_MAGIC):
        raise ModelError(
            f"{path}: a checkpoint in torch's legacy (pre-1.6) format; load it and save it again "
            "with torch >= 1.6 (torch.save(torch.load(f), f))"
        )
    if not head.startswith(b"PK\x03\x04"):
        raise ModelError(f"{path}: not a PyTorch checkpoint (not a zip archive)")
    return size


def read_checkpoint(path: Path) -> object:
    """A ``torch.save`` file as plain Python with ndarrays; ``ModelError`` (naming the file and the
    reason, on one line) for anything else. Never imports torch, never runs code from the file."""
    size = check_header(path)
    try:
        with path.open("rb") as fp:
            return _read(fp, size)
    except _Refused as exc:
        raise ModelError(f"{path}: not a plain tensor checkpoint: {exc}") from None
    except _MALFORMED as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise ModelError(f"{path}: truncated or not a PyTorch checkpoint ({reason})") from None
