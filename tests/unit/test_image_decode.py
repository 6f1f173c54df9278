"""Image decoding: strict base64, formats sniffed from content, pixel limit checked before decoding."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from labelwise.errors import InvalidImage, InvalidInput
from labelwise.images import ImageLimits, ImageLoader, decode_base64, decode_image, sniff_format
from labelwise.images.fetch import FetchPolicy, ImageFetcher

LIMITS = ImageLimits(max_bytes=1024 * 1024, max_pixels=50_000_000)


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` but whose data is a few bytes: decoding it would
    try to allocate width * height * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def red() -> Image.Image:
    return Image.new("RGB", (7, 5), (255, 0, 0))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_every_supported_format_decodes_to_rgb_uint8(red: Image.Image, fmt: str) -> None:
    # Given a small red image in one of the supported formats
    data = encode(red, fmt)

    # When it is sniffed and decoded
    kind = sniff_format(data)
    pixels = decode_image(data, 0, LIMITS)

    # Then the format came from the bytes and the pixels are [height, width, 3] uint8, red
    assert kind == fmt.lower()
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
    assert abs(int(pixels[2, 3, 0]) - 255) <= 8 and int(pixels[2, 3, 1]) <= 8


def test_transparency_is_composited_over_white_and_grey_becomes_rgb() -> None:
    # Given a fully transparent RGBA PNG and a greyscale PNG
    clear = encode(Image.new("RGBA", (3, 3), (0, 0, 0, 0)), "PNG")
    grey = encode(Image.new("L", (3, 3), 100), "PNG")

    # When they are decoded
    # Then transparency shows white and grey is replicated over three channels
    assert decode_image(clear, 0, LIMITS).tolist()[0][0] == [255, 255, 255]
    assert decode_image(grey, 0, LIMITS).tolist()[0][0] == [100, 100, 100]


def test_base64_with_and_without_data_prefix_and_line_breaks(red: Image.Image) -> None:
    # Given a PNG as plain base64, as a data: URL, and base64 wrapped at 76 columns
    data = encode(red, "PNG")
    text = base64.b64encode(data).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))

    # When each is decoded
    # Then all give the same bytes (the declared media type is irrelevant)
    assert decode_base64(text, 0, LIMITS.max_bytes) == data
    assert decode_base64(f"data:image/jpeg;base64,{text}", 0, LIMITS.max_bytes) == data
    assert decode_base64(wrapped, 0, LIMITS.max_bytes) == data


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64!!", "not valid base64"),
        ("QUJD=", "not valid base64"),  # bad padding
        ("QU JD\u00e9", "non-ASCII"),
        ("data:image/png,rawbytes", "must be base64"),
        ("data:image/png;base64", "malformed"),
        ("", "empty"),
    ],
)
def test_bad_base64_is_refused_with_the_index(value: str, reason: str) -> None:
    # Given a malformed base64 image at input index 3
    # When it is decoded
    with pytest.raises(InvalidImage) as info:
        decode_base64(value, 3, LIMITS.max_bytes)

    # Then a 400-class error names the index and the reason
    assert isinstance(info.value, InvalidInput)
    assert info.value.code == "INPUT_INVALID_IMAGE"
    assert "`input[3]`" in info.value.detail and reason in info.value.detail


def test_base64_over_the_size_limit_is_refused_before_decoding() -> None:
    # Given base64 text whose decoded size would exceed the limit
    text = "A" * (4 * 400)  # 1200 bytes decoded

    # When it is decoded with a 1 KB limit
    # Then it is refused on its length
    with pytest.raises(InvalidImage, match="larger than 1024 bytes"):
        decode_base64(text, 0, 1024)


def test_non_image_bytes_are_refused_whatever_their_declared_type() -> None:
    # Given HTML announced as a PNG data URL
    html = base64.b64encode(b"<html><body>hello</body></html>").decode()
    data = decode_base64(f"data:image/png;base64,{html}", 1, LIMITS.max_bytes)

    # When it is decoded
    # Then the content decides: not an image
    with pytest.raises(InvalidImage, match=r"`input\[1\]`.*not a PNG, JPEG, GIF, WebP or BMP"):
        decode_image(data, 1, LIMITS)


def test_other_formats_pillow_knows_are_refused() -> None:
    # Given a TIFF (Pillow decodes it, but it is not an accepted format)
    data = encode(Image.new("RGB", (2, 2)), "TIFF")

    # Then it is refused by its magic bytes
    assert sniff_format(data) is None
    with pytest.raises(InvalidImage):
        decode_image(data, 0, LIMITS)


def test_a_60_megapixel_png_header_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a 200-byte PNG declaring 10000 x 6000 pixels (60 MP)
    data = png_header_only(10_000, 6_000)
    assert len(data) < 300

    # And a guard proving no pixel is ever decoded
    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)

    # When it is decoded under the 50 MP limit
    with pytest.raises(InvalidImage) as info:
        decode_image(data, 2, LIMITS)

    # Then it is refused from its header, naming its size
    assert "`input[2]`" in info.value.detail
    assert "10000x6000" in info.value.detail and "60.0 megapixels" in info.value.detail


def test_a_header_beyond_pillows_own_bomb_limit_is_refused_too() -> None:
    # Given a PNG declaring 60000 x 60000 pixels (more than twice the limit: Pillow's own guard fires)
    data = png_header_only(60_000, 60_000)

    # Then it is refused as too many megapixels
    with pytest.raises(InvalidImage, match="megapixels"):
        decode_image(data, 0, LIMITS)


def test_truncated_image_data_is_refused(red: Image.Image) -> None:
    # Given a PNG cut in half
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")[:60]

    # Then decoding it fails as corrupt, not with a Pillow exception
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode_image(data, 0, LIMITS)


def test_bytes_over_the_limit_are_refused(red: Image.Image) -> None:
    # Given a valid PNG larger than a tiny limit
    data = encode(Image.new("RGB", (64, 64)), "PNG")

    # Then it is refused on size
    with pytest.raises(InvalidImage, match="larger than"):
        decode_image(data, 0, ImageLimits(max_bytes=len(data) - 1))


def test_loader_routes_urls_and_base64_and_refuses_other_schemes(red: Image.Image) -> None:
    # Given a loader whose fetcher must not be reached for base64 or other schemes
    loader = ImageLoader(LIMITS, ImageFetcher(FetchPolicy(timeout_s=0.5)))
    text = base64.b64encode(encode(red, "PNG")).decode()

    # When base64 and a file:// URL are loaded
    pixels = loader.load(text, 0)

    # Then base64 decodes, and a non-http scheme is refused with the index
    assert pixels.shape == (5, 7, 3)
    for url in ("file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/"):
        with pytest.raises(InvalidImage, match=r"`input\[4\]`.*only http\(s\)"):
            loader.load(url, 4)


def test_a_per_request_pixel_limit_never_changes_pillows_global_guard() -> None:
    # Given Pillow's process-wide bomb guard and a 40x40 PNG
    before = Image.MAX_IMAGE_PIXELS
    buf = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buf, format="PNG")
    # When it is refused under a tiny per-request limit
    with pytest.raises(InvalidImage, match="megapixels"):
        decode_image(buf.getvalue(), 0, ImageLimits(max_pixels=100))
    # Then other code in the process still sees Pillow's own limit
    assert before == Image.MAX_IMAGE_PIXELS
