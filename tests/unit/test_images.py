"""isearchd.files.images: every Pillow mode to RGB, EXIF orientation, JPEG draft decode, bad input."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isearchd.errors import BadImage
from isearchd.files.formats import RAW_EXTENSIONS
from isearchd.files.images import BACKGROUND, IMAGE_EXTENSIONS, MAX_PIXELS, is_image_name, load_image, to_rgb

WHITE = (255, 255, 255)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 1) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def pixel(img: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


# ---------------------------------------------------------------- modes


def test_background_is_white() -> None:
    assert BACKGROUND == WHITE


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 128, (128, 128, 128)),
        ("1", 1, WHITE),
        ("1", 0, (0, 0, 0)),
        ("RGB", (10, 20, 30), (10, 20, 30)),
        ("CMYK", (0, 0, 0, 0), WHITE),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("CMYK", (0, 0, 0, 255), (0, 0, 0)),
        ("RGBA", (200, 0, 0, 255), (200, 0, 0)),
        ("RGBA", (0, 0, 0, 0), WHITE),  # transparent black -> the white background
        ("RGBA", (255, 0, 0, 128), (255, 127, 127)),  # half red over white
        ("LA", (0, 0), WHITE),
        ("LA", (50, 255), (50, 50, 50)),
        ("YCbCr", (128, 128, 128), (128, 128, 128)),
    ],
)
def test_to_rgb_modes(mode: str, value: int | tuple[int, ...], expected: tuple[int, int, int]) -> None:
    img = Image.new(mode, (3, 2), value)
    out = to_rgb(img)
    assert out.mode == "RGB"
    assert out.size == (3, 2)
    assert close(pixel(out), expected), (mode, value, pixel(out))


def test_to_rgb_premultiplied_modes() -> None:
    for mode in ("RGBa", "La", "PA"):
        out = to_rgb(Image.new(mode, (2, 2)))
        assert out.mode == "RGB"
        assert pixel(out) == WHITE  # all-zero means fully transparent


def test_palette_with_and_without_transparency() -> None:
    img = Image.new("P", (4, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    out = to_rgb(img)
    assert pixel(out, (0, 0)) == (255, 0, 0)
    assert pixel(out, (1, 0)) == (0, 0, 255)

    img.info["transparency"] = 1  # index 1 transparent
    out = to_rgb(img)
    assert pixel(out, (0, 0)) == (255, 0, 0)
    assert pixel(out, (1, 0)) == WHITE
    # through real files: GIF and PNG with a transparent palette entry
    for fmt in ("GIF", "PNG"):
        loaded = load_image(encode(img, fmt, transparency=1))
        assert loaded.mode == "RGB"
        assert pixel(loaded, (0, 0)) == (255, 0, 0)
        assert pixel(loaded, (1, 0)) == WHITE


def test_png_with_transparent_colour_key() -> None:
    grey = Image.new("L", (2, 1), 40)
    grey.putpixel((1, 0), 90)
    out = load_image(encode(grey, "PNG", transparency=90))
    assert pixel(out, (0, 0)) == (40, 40, 40)
    assert pixel(out, (1, 0)) == WHITE
    rgb = Image.new("RGB", (2, 1), (1, 2, 3))
    rgb.putpixel((1, 0), (9, 9, 9))
    out = load_image(encode(rgb, "PNG", transparency=(9, 9, 9)))
    assert pixel(out, (0, 0)) == (1, 2, 3)
    assert pixel(out, (1, 0)) == WHITE


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    out = to_rgb(img)
    greys = [pixel(out, (x, 0))[0] for x in range(4)]
    assert greys == [0, 4, 128, 255]  # 1000/65535 of the way up is dark, not white
    # big-endian variant and a real 16-bit PNG file
    big = Image.frombytes("I;16B", (4, 1), values.astype(">u2").tobytes())
    assert [pixel(to_rgb(big), (x, 0))[0] for x in range(4)] == greys
    loaded = load_image(encode(img, "PNG"))
    assert loaded.mode == "RGB"
    assert [pixel(loaded, (x, 0))[0] for x in range(4)] == greys


def test_32_bit_and_float_grayscale() -> None:
    as_16 = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32))
    assert [pixel(to_rgb(as_16), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    wide = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    assert [pixel(to_rgb(wide), (x, 0))[0] for x in range(3)] == [0, 128, 255]  # its own range
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert [pixel(to_rgb(unit), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    other = Image.fromarray(np.array([[10.0, 20.0, 30.0]], dtype=np.float32))
    assert [pixel(to_rgb(other), (x, 0))[0] for x in range(3)] == [0, 128, 255]
    flat = Image.fromarray(np.full((2, 2), 7.0, dtype=np.float32))
    assert to_rgb(flat).mode == "RGB"


def test_rgb_input_is_returned_unchanged() -> None:
    img = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(img) is img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF"])
def test_formats_load_as_rgb(fmt: str, tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 30), (200, 30, 30))
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(encode(img, fmt))
    out = load_image(path)
    assert out.mode == "RGB"
    assert out.size == (40, 30)
    assert close(pixel(out, (20, 15)), (200, 30, 30), tol=12)


def test_cmyk_jpeg_file() -> None:
    out = load_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    assert out.mode == "RGB"
    assert close(pixel(out, (8, 8)), (255, 0, 0), tol=6)


def test_multi_frame_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert close(pixel(load_image(data), (4, 4)), (255, 0, 0), tol=2)


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize(("orientation", "top_colour"), [(1, None), (6, "red"), (8, "blue"), (3, None)])
def test_exif_orientation_is_applied(orientation: int, top_colour: str | None) -> None:
    # stored landscape: left half red, right half blue
    img = Image.new("RGB", (64, 32), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = load_image(encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    red, blue = (255, 0, 0), (0, 0, 255)
    if orientation in (6, 8):  # rotated a quarter turn: portrait
        assert out.size == (32, 64)
        top, bottom = pixel(out, (16, 8)), pixel(out, (16, 56))
        expected_top = red if top_colour == "red" else blue
        assert close(top, expected_top, tol=40)
        assert close(bottom, blue if expected_top == red else red, tol=40)
    else:
        assert out.size == (64, 32)
        left, right = pixel(out, (8, 16)), pixel(out, (56, 16))
        assert close(left, red if orientation == 1 else blue, tol=40)
        assert close(right, blue if orientation == 1 else red, tol=40)


# ---------------------------------------------------------------- JPEG draft decode


def _photo(name: str) -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    w, h = img.size
    scale = max(size[0] / w, size[1] / h)
    big = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    left, top = (big.width - size[0]) // 2, (big.height - size[1]) // 2
    return big.crop((left, top, left + size[0], top + size[1]))


def _clip_view(img: Image.Image, size: int = 224) -> np.ndarray:
    """CLIP preprocessing up to the pixels: shorter side -> size (bicubic), centre crop."""
    w, h = img.size
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = round((nh - size) / 2), round((nw - size) / 2)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def test_draft_keeps_shorter_side_at_least_min_side() -> None:
    data = encode(Image.new("RGB", (4000, 3000), (90, 120, 150)), "JPEG")
    out = load_image(data)
    assert out.size == (500, 375)  # 1/8 scale: the smallest that keeps >= 224
    assert min(load_image(data, min_side=600).size) >= 600
    assert load_image(data, min_side=100_000).size == (4000, 3000)  # no draft: full decode
    small = encode(Image.new("RGB", (400, 300)), "JPEG")
    assert load_image(small).size == (400, 300)  # not much larger than 224: full decode
    portrait = encode(Image.new("RGB", (1000, 3000)), "JPEG")
    assert min(load_image(portrait).size) >= 224


@pytest.mark.parametrize("size", [(4000, 3000), (1920, 1080)])
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_draft_decode_matches_full_decode_after_clip_resize(name: str, size: tuple[int, int]) -> None:
    data = encode(_cover(_photo(name), size), "JPEG", quality=90)
    full = load_image(data, min_side=100_000)
    draft = load_image(data)
    assert full.size == size
    assert draft.size != size
    # measured 44-53 dB on these photos (benchmarks/bench_decode.py); 38 dB leaves room for
    # libjpeg version differences while still catching a wrong scale or a shifted crop
    assert _psnr(_clip_view(full), _clip_view(draft)) >= 38.0


def test_multi_picture_jpeg_first_frame_and_draft() -> None:
    frames = [Image.new("RGB", (1200, 900), c) for c in ((250, 0, 0), (0, 0, 250))]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = load_image(data)
    assert out.size == (300, 225)  # 1/4 scale
    assert close(pixel(out, (10, 10)), (250, 0, 0), tol=6)


# ---------------------------------------------------------------- bad input


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bad(source: str | Path | bytes, name: str | None = None) -> BadImage:
    with pytest.raises(BadImage) as info:
        load_image(source, name=name)
    return info.value


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    data = encode(img, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    err = _bad(path)
    assert err.source == str(path)
    assert err.reason == "truncated JPEG"
    assert str(path) in str(err)


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(2).bytes(4096))
    assert _bad(path).reason == "not an image (unrecognised format)"


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert _bad(path).reason == "empty file"
    assert _bad(b"", name="upload.png").source == "upload.png"


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("shopping list: eggs, milk\n" * 20)
    assert _bad(path).reason == "not an image (unrecognised format)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _bad(tmp_path / "nope.jpg").reason == "file not found"
    assert "directory" in _bad(tmp_path).reason


def _two_page_tiff() -> bytearray:
    pages = [Image.new("RGB", (32, 16), (200, 10, 10)), Image.new("RGB", (32, 16), (10, 200, 10))]
    return bytearray(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))


def _patch_tiff_tag(data: bytearray, tag: int, value: int) -> bytearray:
    """Set a SHORT tag in every IFD of a little-endian TIFF."""
    offset = struct.unpack("<I", data[4:8])[0]
    while offset:
        count = struct.unpack("<H", data[offset : offset + 2])[0]
        for i in range(count):
            entry = offset + 2 + 12 * i
            if struct.unpack("<H", data[entry : entry + 2])[0] == tag:
                data[entry + 8 : entry + 10] = struct.pack("<H", value)
        offset = struct.unpack("<I", data[offset + 2 + 12 * count : offset + 6 + 12 * count])[0]
    return data


def test_multi_page_tiff_variants_pillow_cannot_open() -> None:
    good = load_image(bytes(_two_page_tiff()))
    assert pixel(good, (0, 0)) == (200, 10, 10)  # first page
    # JPEG 2000 compression (34712): Pillow has no decoder for it
    err = _bad(bytes(_patch_tiff_tag(_two_page_tiff(), 259, 34712)), name="scan.tif")
    assert err.source == "scan.tif"
    assert "TIFF" in err.reason
    # a compression the pixel data does not match
    assert "TIFF" in _bad(bytes(_patch_tiff_tag(_two_page_tiff(), 259, 50000))).reason
    # first IFD offset pointing past the end of the file
    broken = _two_page_tiff()
    broken[4:8] = struct.pack("<I", len(broken) + 1000)
    assert "TIFF" in _bad(bytes(broken)).reason


def test_decompression_bomb_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(40_000, 40_000))
    assert path.stat().st_size < 200
    err = _bad(path)
    assert err.reason.startswith("image too large")
    assert "1600.0 megapixels" in err.reason
    # just over our bound (Pillow only warns here): refused with the dimensions
    over = _png_header(9500, 9500)
    assert MAX_PIXELS < 9500 * 9500
    assert _bad(over).reason.startswith("image too large")
    # a JPEG claiming a huge size: same, without decoding
    header = bytearray(encode(Image.new("RGB", (16, 16)), "JPEG"))
    sof = header.index(b"\xff\xc0")
    header[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
    err = _bad(bytes(header))
    assert err.reason == f"image too large: 900.0 megapixels (limit {MAX_PIXELS / 1e6:.1f} megapixels)"


def test_one_pixel_and_panorama(tmp_path: Path) -> None:
    one = load_image(encode(Image.new("RGB", (1, 1), (5, 6, 7)), "PNG"))
    assert one.size == (1, 1)
    assert pixel(one) == (5, 6, 7)
    path = tmp_path / "pano.jpg"
    path.write_bytes(encode(Image.new("RGB", (20000, 100), (0, 128, 0)), "JPEG"))
    pano = load_image(path)
    assert pano.size == (20000, 100)
    assert pano.mode == "RGB"


# ---------------------------------------------------------------- names


def test_image_extensions_and_names() -> None:
    classic = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
    assert classic | {".heic", ".heif", ".hif", ".avif"} | RAW_EXTENSIONS == IMAGE_EXTENSIONS
    good = ("a.jpg", "A.JPG", "dir/b.Jpeg", "c.png", "d.webp", "e.TIFF", "f.gif", "g.bmp", Path("x/y.tif"))
    for name in good:
        assert is_image_name(name), name
    for name in (".hidden.jpg", "dir/.x.png", "notes.txt", "jpg", "archive.jpg.zip", "", "dir/"):
        assert not is_image_name(name), name


def test_pixel_bound_is_ours_where_pillow_only_warns() -> None:
    # the daemon does not turn warnings into errors: our own bound refuses, naming the size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        err = _bad(_png_header(9500, 9500))
    assert err.reason == f"image too large: 9500x9500 pixels (limit {MAX_PIXELS / 1e6:.1f} megapixels)"


def test_a_fifo_named_like_an_image_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(BadImage, match="not a regular file"):
        load_image(fifo)
