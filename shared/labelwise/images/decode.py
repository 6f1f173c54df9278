"""Image bytes -> RGB uint8 pixels, refusing anything that is not a small-enough image.

Order of checks (cheapest first, nothing decoded until the image is known to be acceptable):

1. base64 text (with or without a ``data:image/...;base64,`` prefix) is size-checked from its length,
   then decoded strictly (standard alphabet, correct padding; ASCII whitespace is ignored);
2. the format is sniffed from the magic bytes (PNG, JPEG, GIF, WebP, BMP); declared media types
   (``data:`` prefix, ``Content-Type``) are never trusted;
3. the dimensions are read from the header (Pillow's ``Image.open`` is lazy) and images with more
   than ``max_pixels`` pixels are refused *before* any pixel is decoded (:func:`image_pixels` stops
   here: the loader sums a request's pixels before decoding any of its images);
4. only then is the first frame decoded, EXIF orientation applied, transparency composited over
   white, and the result returned as ``[height, width, 3]`` uint8.

Every failure is :class:`labelwise.errors.InvalidImage` naming the input index and the reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.errors import InvalidImage

#: Pillow format names by sniffed format (``Image.open(formats=...)`` tries only that decoder).
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}

_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE)
_WHITESPACE = re.compile(rb"[ \t\r\n\f\v]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True)
class ImageLimits:
    """What an image may weigh. Built from Settings by :func:`labelwise.images.limits_from`."""

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 50_000_000
    #: All of one request's images together (:meth:`labelwise.images.ImageLoader.chunks`).
    max_request_pixels: int = 64_000_000


def image_error(index: int, reason: str) -> InvalidImage:
    return InvalidImage(f"`input[{index}]` is not a usable image: {reason}.")


def sniff_format(data: bytes) -> str | None:
    """The image format named by ``data``'s magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    return None


def decode_base64(text: str, index: int, max_bytes: int) -> bytes:
    """Strictly decode a base64 image, with or without a ``data:<type>;base64,`` prefix.

    The size is checked from the encoded length before anything is decoded.
    """
    payload = text.strip()
    match = _DATA_URL.match(payload)
    if match:
        params = [p.strip().lower() for p in match.group(2).split(";") if p.strip()]
        if "base64" not in params:
            raise image_error(index, "a `data:` URL must be base64-encoded (`;base64,`)")
        payload = payload[match.end() :]
    elif payload[:5].lower() == "data:":
        raise image_error(index, "malformed `data:` URL")
    try:
        raw = payload.encode("ascii")
    except UnicodeEncodeError:
        raise image_error(index, "not base64 (non-ASCII characters)") from None
    raw = _WHITESPACE.sub(b"", raw)
    if not raw:
        raise image_error(index, "empty image")
    if len(raw) // 4 * 3 > max_bytes + 2:
        raise image_error(index, f"larger than {max_bytes} bytes")
    if len(raw) % 4 or not _BASE64.fullmatch(raw):
        raise image_error(index, "not valid base64")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise image_error(index, "not valid base64") from None
    if len(data) > max_bytes:
        raise image_error(index, f"larger than {max_bytes} bytes")
    return data


def _open(data: bytes, index: int, limits: ImageLimits) -> tuple[Any, str]:
    """The lazily opened image (header read, no pixel decoded) and its format, or InvalidImage."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > limits.max_bytes:
        raise image_error(index, f"larger than {limits.max_bytes} bytes")
    kind = sniff_format(data)
    if kind is None:
        raise image_error(index, "not a PNG, JPEG, GIF, WebP or BMP image (by its content)")
    # The explicit check below refuses anything above ``limits.max_pixels`` from the header alone,
    # before decoding. Pillow's global bomb guard is left alone (process-wide state shared by every
    # request and library); it only fires far above any sensible limit.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[kind]])  # header only
    except Image.DecompressionBombError:
        raise image_error(index, f"more than {limits.max_pixels / 1e6:g} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise image_error(index, f"the {kind.upper()} data is corrupt or truncated") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise image_error(index, "the image has no pixels")
    if width * height > limits.max_pixels:
        raise image_error(
            index,
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels; "
            f"at most {limits.max_pixels / 1e6:g} are accepted",
        )
    return image, kind


def image_pixels(data: bytes, index: int, limits: ImageLimits) -> int:
    """The pixels of image bytes, from the header alone (nothing decoded), after the per-image
    checks of :func:`decode_image`; or InvalidImage."""
    image, _ = _open(data, index, limits)
    width, height = image.size
    image.close()
    return int(width) * int(height)


def decode_image(data: bytes, index: int, limits: ImageLimits) -> npt.NDArray[np.uint8]:
    """Decode image bytes to ``[height, width, 3]`` RGB uint8, or raise InvalidImage."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    image, kind = _open(data, index, limits)
    try:
        image.seek(0)  # first frame of an animation
        image.load()
        rgb = _to_rgb(ImageOps.exif_transpose(image) or image)
    except InvalidImage:
        raise
    except Image.DecompressionBombError:
        raise image_error(index, f"more than {limits.max_pixels / 1e6:g} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise image_error(index, f"the {kind.upper()} data is corrupt or truncated") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:  # pragma: no cover - convert("RGB") guarantees it
        raise image_error(index, "could not convert to RGB")
    return array


def _to_rgb(image: object) -> object:
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
