"""Camera RAW files (isearchd.files.raw through load_image): preview or demosaic, orientation,
metadata, and bad files failing alone with a one-line reason. The RAW files are DNGs written at
test time by pidng (tests/fixtures/rawfiles.py)."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isearchd.engine.photometa import normalise_type, read_metadata
from isearchd.errors import BadImage
from isearchd.files import raw
from isearchd.files.formats import is_image_name, is_raw_name
from isearchd.files.images import load_image
from isearchd.files.scan import scan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from rawfiles import cr3_header, dng_bytes, with_preview

RED, GREEN = (215, 30, 35), (30, 155, 45)


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A flat colour with a white bar along the top edge (tells which way is up)."""
    img = Image.new("RGB", size, colour)
    img.paste((255, 255, 255), (0, 0, size[0], size[1] // 8))
    return img


def centre(img: Image.Image) -> tuple[int, int, int]:
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w = arr.shape[:2]
    r, g, b = arr[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].reshape(-1, 3).mean(axis=0)
    return round(r), round(g), round(b)


def dominant(img: Image.Image) -> str:
    r, g, _ = centre(img)
    return "red" if r > g + 60 else "green" if g > r + 60 else "neither"


def white_edge(img: Image.Image) -> str:
    """Which edge holds the white bar: top, bottom, left or right."""
    arr = np.asarray(img.convert("L"), dtype=np.float32)
    h, w = arr.shape
    edges = {"top": arr[: h // 16].mean(), "bottom": arr[-h // 16 :].mean(),
             "left": arr[:, : w // 16].mean(), "right": arr[:, -w // 16 :].mean()}  # fmt: skip
    return max(edges, key=lambda k: edges[k])


@pytest.mark.parametrize(
    "name",
    [
        "a.cr2",
        "b.CR3",
        "c.nef",
        "d.NRW",
        "e.arw",
        "f.srf",
        "g.sr2",
        "h.RAF",
        "i.orf",
        "j.rw2",
        "k.pef",
        "l.DNG",
    ],
)
def test_raw_names_are_images_in_any_case(name: str) -> None:
    assert is_raw_name(name) and is_image_name(name)


def test_scan_finds_raw_files(tmp_path) -> None:
    (tmp_path / "IMG_1.NEF").write_bytes(b"x")
    (tmp_path / "IMG_1.xmp").write_bytes(b"x")  # a sidecar: not an image
    assert [p.rsplit("/", 1)[1] for p in scan([tmp_path]).files] == ["IMG_1.NEF"]


def test_raw_without_preview_is_demosaiced_at_half_size() -> None:
    data = dng_bytes(picture(RED))
    img = load_image(data, min_side=64, name="shot.dng")
    assert img.mode == "RGB" and img.size == (320, 240)
    assert dominant(img) == "red" and white_edge(img) == "top"


def test_large_preview_is_used_small_one_is_not() -> None:
    # the raw data is red, the preview green: the colour says which one was decoded
    data = dng_bytes(picture(RED), preview=picture(GREEN, (600, 400)))
    assert dominant(load_image(data, min_side=224, name="shot.dng")) == "green"
    assert dominant(load_image(data, min_side=224, name="shot.dng", preview_side=500)) == "red"
    small = dng_bytes(picture(RED), preview=picture(GREEN, (160, 120)))
    assert dominant(load_image(small, min_side=224, name="shot.dng")) == "red"


def test_a_raw_name_decides_not_the_bytes(tmp_path) -> None:
    path = tmp_path / "IMG_0001.NEF"  # LibRaw reads what the content is
    path.write_bytes(dng_bytes(picture(RED), preview=picture(GREEN, (600, 400))))
    assert dominant(load_image(path, min_side=224)) == "green"


@pytest.mark.parametrize("preview", [False, True])
def test_the_raw_orientation_turns_demosaic_and_preview(preview: bool) -> None:
    kw = {"preview": picture(GREEN, (600, 400))} if preview else {}
    data = dng_bytes(picture(RED), orientation=6, **kw)  # 6: turn 90° clockwise to view
    img = load_image(data, min_side=200, name="shot.dng")
    assert img.height > img.width and white_edge(img) == "right"


def test_a_preview_with_its_own_orientation_is_not_turned_twice() -> None:
    prev = picture(GREEN, (600, 400))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    prev.save(buf, "JPEG", exif=exif)
    base = dng_bytes(picture(RED), orientation=6)
    img = load_image(with_preview(base, buf.getvalue(), prev.size), min_side=200, name="x.dng")
    assert dominant(img) == "green" and white_edge(img) == "right"


def test_metadata_of_a_raw_file() -> None:
    data = dng_bytes(picture(RED), orientation=6, taken="2021:07:14 18:30:05", gps=(38.7223, -9.1393))
    meta = read_metadata(data, 0, "DSC_0001.dng")
    assert meta.taken_source == "exif" and meta.taken_local == "2021-07-14T18:30:05"
    assert meta.lat == pytest.approx(38.7223, abs=1e-4) and meta.lon == pytest.approx(-9.1393, abs=1e-4)
    assert (meta.width, meta.height, meta.type) == (480, 640, "raw")
    assert normalise_type("RAW") == "raw"
    bare = read_metadata(dng_bytes(picture(RED)), 10**18, "x.dng")
    assert bare.taken_source == "mtime" and bare.type == "raw"


def test_raw_exif_of_tiff_like_headers() -> None:
    tiff = dng_bytes(picture(RED), taken="2020:01:02 03:04:05")
    orf = b"IIRO" + tiff[4:]  # Olympus: TIFF under another magic number
    for data in (tiff, orf):
        assert raw.raw_exif(data).get_ifd(0x8769)[0x9003] == "2020:01:02 03:04:05"
    assert len(raw.raw_exif(b"not a raw file")) == 0


def test_metadata_of_a_cr3_from_its_canon_boxes() -> None:
    data = cr3_header("2023:08:19 07:45:12", "+09:00", (35.6586, 139.7454))
    meta = read_metadata(data, 0, "IMG_0042.CR3")
    assert (meta.taken, meta.taken_local, meta.taken_source) == (
        "2023-08-19T07:45:12+09:00", "2023-08-19T07:45:12", "exif"
    )  # fmt: skip
    assert meta.lat == pytest.approx(35.6586, abs=1e-4) and meta.lon == pytest.approx(139.7454, abs=1e-4)
    assert meta.type == "raw"
    # a file cut inside its boxes, or a box claiming more than the file: the file time, no error
    for damaged in (data[:40], data[:200], data[:24] + b"\xff\xff\xff\xffmoov" + data[32:]):
        assert read_metadata(damaged, 0, "IMG_0042.CR3").taken_source == "mtime"
    assert read_metadata(data[:-40], 0, "IMG_0042.CR3").taken_source == "exif"  # cut in the pixels


def test_preview_bytes_for_thumbnails() -> None:
    data = dng_bytes(picture(RED), preview=picture(GREEN, (600, 400)))
    jpeg = raw.raw_preview(data, "x.dng")
    assert jpeg is not None and Image.open(io.BytesIO(jpeg)).size == (600, 400)
    assert raw.raw_preview(dng_bytes(picture(RED)), "x.dng") is None


def test_a_broken_preview_falls_back_to_the_demosaic() -> None:
    good = picture(GREEN, (600, 400))
    buf = io.BytesIO()
    good.save(buf, "JPEG")
    jpeg = buf.getvalue()
    broken = jpeg[: len(jpeg) // 3] + b"\0" * (len(jpeg) - len(jpeg) // 3)  # header fine, data gone
    data = with_preview(dng_bytes(picture(RED)), broken, good.size)
    assert dominant(load_image(data, min_side=200, name="x.dng")) == "red"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (lambda d: d[: len(d) // 2], "truncated or unreadable DNG"),
        (lambda d: b"\x13\x37" * 5000, "not a DNG file LibRaw can read"),
        (lambda d: b"", "empty file"),
    ],
)
def test_bad_raw_files_fail_with_one_line(data, reason: str) -> None:
    with pytest.raises(BadImage) as e:
        load_image(data(dng_bytes(picture(RED))), name="bad.dng")
    assert e.value.reason.startswith(reason) and "\n" not in e.value.reason


def test_a_raw_file_that_takes_too_long_fails_at_the_time_limit(monkeypatch) -> None:
    def stuck(*_a: object) -> raw.RawPicture:
        time.sleep(2)
        return raw.RawPicture()

    monkeypatch.setattr(raw, "_read", stuck)
    t0 = time.monotonic()
    with pytest.raises(raw.RawError, match=r"NEF decoding took longer than 0\.2 s \(time limit\)"):
        raw.read_raw(b"x", "slow.NEF", preview_side=224, time_limit=0.2)
    assert time.monotonic() - t0 < 1.5


def test_thumbnail_and_large_view_of_a_raw_file_come_from_its_preview(tmp_path: Path) -> None:
    from isearchd.files.images import content_hash
    from isearchd.messages import ImageInfo
    from isearchd.web.thumbs import Thumbnails

    path = tmp_path / "IMG_0001.CR2"
    data = dng_bytes(picture(RED, (1280, 1000)), preview=picture(GREEN, (1600, 1200)), orientation=6)
    path.write_bytes(data)
    st = path.stat()
    info = ImageInfo(id=1, label=str(path), path=str(path), bytes=st.st_size, mtime_ns=st.st_mtime_ns,
                     hash=content_hash(data), type="raw")  # fmt: skip
    thumbs = Thumbnails(tmp_path / "cache", 1 << 20)
    try:
        thumb = Image.open(io.BytesIO(thumbs._make(info) or b""))
        assert dominant(thumb) == "green" and thumb.height > thumb.width  # the RAW's orientation
        full = thumbs._full(info)
        assert full is not None and full[1] == "image/jpeg"
        big = Image.open(io.BytesIO(full[0]))
        assert dominant(big) == "green" and big.size == (1200, 1600)
    finally:
        thumbs.close()
