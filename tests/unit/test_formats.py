"""Phone formats: HEIC/HEIF (pillow-heif) and AVIF (Pillow's own plugin) through ``load_image``.

Test files are written here: HEIC with pillow-heif's own encoder (``from_pillow``, which needs no
Pillow registration), AVIF with Pillow. Headers are patched where a test needs a file no encoder
writes (a huge claimed size, EXIF orientation without the container's rotation).
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from isearchd.errors import BadImage
from isearchd.files.images import IMAGE_EXTENSIONS, MAX_PIXELS, is_image_name, load_image
from isearchd.files.scan import scan
from isearchd.searchquery import is_image_query
from isearchd.watch.pathfilter import PathFilter

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
ORIENTATION = 0x0112


def heic(img: Image.Image, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    buf = io.BytesIO()
    pillow_heif.from_pillow(img).save(buf, quality=95, exif=exif.tobytes())
    return buf.getvalue()


def avif(img: Image.Image, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def jpeg(img: Image.Image, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


ENCODERS = {"HEIF": heic, "AVIF": avif}


def quadrants(width: int = 64, height: int = 32) -> Image.Image:
    """Four colours, one per quadrant: every rotation and mirror gives a different picture."""
    img = Image.new("RGB", (width, height))
    w, h = width // 2, height // 2
    for colour, box in ((RED, (0, 0, w, h)), (GREEN, (w, 0, width, h)), (BLUE, (0, h, w, height))):
        img.paste(colour, box)
    img.paste(YELLOW, (w, h, width, height))
    return img


def layout(img: Image.Image) -> tuple[tuple[int, int], list[tuple[int, int, int]]]:
    """Size and the colour at the centre of each quadrant, each channel rounded to 0 or 255."""
    w, h = img.size
    points = [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]
    colours = []
    for xy in points:
        value = img.getpixel(xy)
        assert isinstance(value, tuple)
        colours.append(tuple(255 if c > 127 else 0 for c in value[:3]))
    return img.size, colours  # type: ignore[return-value]


def boxes(data: bytes | bytearray, name: bytes) -> list[int]:
    """Offsets of every box type ``name`` (the 4 type bytes; the payload starts 4 bytes later)."""
    found, i = [], data.find(name)
    while i >= 0:
        found.append(i)
        i = data.find(name, i + 4)
    return found


def claim_size(data: bytes, width: int, height: int) -> bytes:
    """The file with every image size in its header (ispe, and HEIF's crop box clap) replaced."""
    out = bytearray(data)
    for i in boxes(out, b"ispe"):  # type, version+flags, width, height
        out[i + 8 : i + 16] = struct.pack(">II", width, height)
    for i in boxes(out, b"clap"):  # type, width N/D, height N/D, offsets
        out[i + 4 : i + 20] = struct.pack(">IIII", width, 1, height, 1)
    return bytes(out)


def bad(source: str | Path | bytes) -> BadImage:
    with pytest.raises(BadImage) as info:
        load_image(source)
    return info.value


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("HEIF", "heic"), ("HEIF", "HEIF"), ("HEIF", "hif"), ("AVIF", "avif")]
)
def test_heic_and_avif_files_load_as_rgb(fmt: str, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"IMG_0001.{suffix}"
    path.write_bytes(ENCODERS[fmt](quadrants(48, 40)))
    out = load_image(path)
    assert out.mode == "RGB"
    assert out.size == (48, 40)
    assert layout(out) == ((48, 40), [RED, GREEN, BLUE, YELLOW])


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_transparency_is_composited_on_white(fmt: str) -> None:
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 16, 32))
    out = load_image(ENCODERS[fmt](img))
    assert out.mode == "RGB"
    pixels = np.asarray(out, dtype=np.int16)
    assert np.abs(pixels[16, 24] - (255, 255, 255)).max() <= 12  # transparent -> white
    assert np.abs(pixels[16, 8] - BLUE).max() <= 12


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_generic_mif1_brand_goes_to_the_right_decoder(fmt: str) -> None:
    # Both Pillow's AVIF plugin and pillow-heif accept the generic "mif1" major brand; an AV1 file
    # given to pillow-heif 1.x would fail ("AV1 not built in"), so Pillow's must be asked first.
    data = bytearray(ENCODERS[fmt](quadrants()))
    assert data[4:8] == b"ftyp"
    data[8:12] = b"mif1"
    assert layout(load_image(bytes(data))) == ((64, 32), [RED, GREEN, BLUE, YELLOW])


# ---------------------------------------------------------------- orientation


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_rotated_phone_photo_is_turned_once_like_the_jpeg(fmt: str, orientation: int) -> None:
    # The encoders store the pixels as given and turn the EXIF orientation into the container's
    # rotation/mirror (irot/imir); the HEIC also keeps the EXIF tag, as iPhones do. Decoded, each
    # must look exactly like the JPEG with the same tag: rotated once, not twice, not never.
    img = quadrants()
    expected = layout(load_image(jpeg(img, orientation)))
    assert layout(load_image(ENCODERS[fmt](img, orientation))) == expected


def test_iphone_style_heic_has_both_tags() -> None:
    # what the test above relies on: the turn is in the container (irot) AND in EXIF
    data = heic(quadrants(), 6)
    (irot,) = boxes(data, b"irot")
    assert data[irot + 4] & 3 == 3  # 270 degrees anticlockwise = 90 clockwise, EXIF's 6
    exif = Image.Exif()
    exif.load(data[data.index(b"MM\x00*") :])
    assert exif[ORIENTATION] == 6


def test_heic_exif_orientation_without_container_rotation_is_ignored() -> None:
    # HEIF makes its own transformations authoritative: a stale EXIF tag does not turn the picture
    data = bytearray(heic(quadrants(), 6))
    (irot,) = boxes(data, b"irot")
    data[irot + 4] = 0
    assert layout(load_image(bytes(data))) == ((64, 32), [RED, GREEN, BLUE, YELLOW])


def test_heic_is_not_turned_by_exif_even_if_pillow_heif_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # pillow-heif resets EXIF orientation to 1 on open, with a best-effort parser that gives up
    # silently on EXIF it does not understand; ours must not depend on that reset
    import pillow_heif.as_plugin

    monkeypatch.setattr(pillow_heif.as_plugin, "set_orientation", lambda info: None)
    data = heic(quadrants(), 6)
    load_image(data)  # registers the plugin
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.getexif()[ORIENTATION] == 6  # the tag is really there this time
    assert layout(load_image(data)) == layout(load_image(jpeg(quadrants(), 6)))


# ---------------------------------------------------------------- bombs and broken files


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_huge_size_in_the_header_is_refused_before_decoding(fmt: str) -> None:
    data = ENCODERS[fmt](quadrants())
    assert len(data) < 2000
    # just over our bound: Pillow only warns (an error under pytest); the daemon ignores warnings
    over = claim_size(data, 9500, 9500)
    assert MAX_PIXELS < 9500 * 9500
    assert bad(over).reason.startswith("image too large")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        err = bad(over)
    assert err.reason == f"image too large: 9500x9500 pixels (limit {MAX_PIXELS / 1e6:.1f} megapixels)"
    if fmt == "HEIF":
        err = bad(claim_size(data, 20000, 20000))
        assert err.reason == f"image too large: 400.0 megapixels (limit {MAX_PIXELS / 1e6:.1f} megapixels)"
    else:  # libavif refuses more than 16384x16384 while parsing, without naming the size
        assert bad(claim_size(data, 20000, 20000)).reason.startswith("corrupt AVIF")


def _photo_like(size: int = 96) -> Image.Image:
    """Noise, so that the coded picture is long enough to cut in several places."""
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype="uint8"))


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_truncated_files_fail_with_a_one_line_reason(fmt: str, tmp_path: Path) -> None:
    """The rule for every format: a file cut short is refused, never shown partly decoded, however
    few bytes are missing and whatever the codec library would make of the rest (libheif 1.9
    decodes a HEIF missing its last bytes; the box sizes of the container say it is incomplete)."""
    data = ENCODERS[fmt](_photo_like())
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:-10])  # the header is whole, the picture is not
    err = bad(path)
    assert err.reason == f"truncated {fmt}"
    assert err.source == str(path)
    for missing in (1, 2, 100):
        assert bad(data[:-missing]).reason == f"truncated {fmt}", missing
    assert load_image(data + b"\0" * 3).mode == "RGB"  # bytes after the last box: not a truncation
    for cut in (12, 40, len(data) // 3, len(data) // 2, len(data) - 1):
        reason = bad(data[:cut]).reason
        assert fmt in reason and "\n" not in reason, (cut, reason)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_corrupt_files_fail_or_decode_never_crash(fmt: str) -> None:
    data = ENCODERS[fmt](_photo_like())
    rng = np.random.default_rng(4)
    for _ in range(20):
        broken = bytearray(data)
        for i in rng.integers(24, len(data), 8):
            broken[i] ^= 0xFF
        try:
            out = load_image(bytes(broken))
        except BadImage as e:
            assert e.reason and "\n" not in e.reason
        else:  # a codec may decode damaged pixels without noticing
            assert out.mode == "RGB"


# ---------------------------------------------------------------- names


def test_phone_extensions_in_any_case(tmp_path: Path) -> None:
    assert {".heic", ".heif", ".hif", ".avif"} <= IMAGE_EXTENSIONS
    names = ["IMG_0001.HEIC", "IMG_0002.heic", "b.HeIf", "c.hif", "d.AVIF", "e.avif"]
    for name in names:
        assert is_image_name(name), name
        (tmp_path / name).write_bytes(b"x")
    assert not is_image_name(".IMG_0003.HEIC")
    # scan (add), the watcher's filter and the CLI's "is this query an image file" agree
    assert sorted(Path(p).name for p in scan([tmp_path]).files) == sorted(names)
    watched = PathFilter(str(tmp_path))
    assert all(watched.wants_file(str(tmp_path / "DCIM" / name)) for name in names)
    assert all(is_image_query(str(tmp_path / name)) for name in names)


def test_importing_registers_nothing_and_first_use_registers_once() -> None:
    # in a fresh interpreter: the import leaves Pillow alone; concurrent first decodes register
    # pillow-heif's opener exactly once, after Pillow's own AVIF plugin
    script = f"""
import io, threading
from PIL import Image
import isearchd.files.images as images
assert "HEIF" not in Image.ID, Image.ID
data = {heic(quadrants())!r}
errors = []
def decode():
    try:
        assert images.load_image(data).size == (64, 32)
    except BaseException as e:
        errors.append(e)
threads = [threading.Thread(target=decode) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
assert Image.ID.count("HEIF") == 1 and Image.ID.index("AVIF") < Image.ID.index("HEIF"), Image.ID
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_heic_metadata_is_read_even_before_any_image_was_decoded(tmp_path: Path) -> None:
    """The indexer reads a photo's metadata before it decodes it: in a fresh process (no HEIF
    opener registered yet) an iPhone photo must still have its type, size and EXIF date."""
    img = Image.new("RGB", (48, 32), "orange")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 10:30:00"
    buf = io.BytesIO()
    pillow_heif.from_pillow(img).save(buf, quality=95, exif=exif.tobytes())
    (tmp_path / "IMG_0001.HEIC").write_bytes(buf.getvalue())
    code = (
        "import sys; from pathlib import Path; from isearchd.engine.photometa import read_metadata;"
        "m = read_metadata(Path(sys.argv[1]).read_bytes(), 0);"
        "print(m.type, m.width, m.height, m.taken_source, m.taken)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "IMG_0001.HEIC")],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == ["heic", "48", "32", "exif", "2021-07-04T10:30:00"]


@pytest.mark.parametrize("where", ["eXIf", "text", "none"])
def test_png_metadata_is_read_wherever_png_keeps_exif(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG with no EXIF chunk is not decoded to look for one (that cost as much as the decode);
    a PNG with EXIF, in an eXIf chunk or a "Raw profile type exif" text chunk, still has it read."""
    from PIL import PngImagePlugin

    from isearchd.engine.photometa import read_metadata

    img = Image.new("RGB", (60, 30), "green")
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif.get_ifd(0x8769)[0x9003] = "2020:01:02 03:04:05"
    buf = io.BytesIO()
    if where == "eXIf":
        img.save(buf, "PNG", exif=exif)
    elif where == "text":
        raw = exif.tobytes()
        text = PngImagePlugin.PngInfo()
        text.add_text("Raw profile type exif", f"\nexif\n{len(raw)}\n{raw.hex()}\n")
        img.save(buf, "PNG", pnginfo=text)
    else:
        img.save(buf, "PNG")
    loads: list[int] = []
    real_load = PngImagePlugin.PngImageFile.load

    def counting_load(self: PngImagePlugin.PngImageFile) -> object:
        loads.append(1)
        return real_load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counting_load)
    meta = read_metadata(buf.getvalue(), 0)
    assert (meta.type, meta.width, meta.height) == (("png", 30, 60) if where != "none" else ("png", 60, 30))
    if where == "none":
        assert meta.taken_source == "mtime" and not loads  # nothing decoded
    else:
        assert (meta.taken_source, meta.taken) == ("exif", "2020-01-02T03:04:05")
