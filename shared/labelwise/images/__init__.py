"""Image inputs: ``{"image": …}`` is an http(s) URL or base64 (with or without a ``data:`` prefix).

:func:`load_image` turns one such value into ``[height, width, 3]`` RGB uint8 pixels, or raises
:class:`labelwise.errors.InvalidImage` (400) naming the input index and the reason. URLs are
fetched under an SSRF policy (:mod:`labelwise.images.fetch`); bytes are sniffed and size-checked
before decoding (:mod:`labelwise.images.decode`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from labelwise.images.decode import ImageLimits, decode_base64, decode_image, image_error, sniff_format
from labelwise.images.fetch import FetchPolicy, ImageFetcher, address_refusal
from labelwise.settings import Settings

__all__ = [
    "FetchPolicy",
    "ImageFetcher",
    "ImageLimits",
    "ImageLoader",
    "address_refusal",
    "decode_base64",
    "decode_image",
    "sniff_format",
]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

RGBImage = npt.NDArray[np.uint8]


class ImageLoader:
    """Loads image inputs (URL or base64) under the limits in Settings. Thread-safe; one per process."""

    def __init__(self, limits: ImageLimits, fetcher: ImageFetcher) -> None:
        self.limits = limits
        self.fetcher = fetcher

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLoader:
        limits = ImageLimits(max_bytes=settings.image_max_bytes, max_pixels=settings.image_max_pixels)
        policy = FetchPolicy(
            max_bytes=settings.image_max_bytes,
            timeout_s=settings.image_fetch_timeout_s,
            max_redirects=settings.image_max_redirects,
        )
        return cls(limits, ImageFetcher(policy))

    def load_bytes(self, value: str, index: int) -> bytes:
        """The encoded image bytes of one input (fetched or base64-decoded), size-checked, not decoded."""
        text = value.strip()
        scheme = _SCHEME.match(text)
        if scheme:
            if scheme.group(1).lower() not in ("http", "https"):
                raise image_error(index, f"only http(s) URLs are fetched, not {scheme.group(1).lower()!r}")
            return self.fetcher.fetch(text, index)
        return decode_base64(text, index, self.limits.max_bytes)

    def load(self, value: str, index: int) -> RGBImage:
        """One input as ``[height, width, 3]`` RGB uint8."""
        return decode_image(self.load_bytes(value, index), index, self.limits)

    def load_all(self, values: Sequence[str], start: int = 0, max_workers: int = 4) -> list[RGBImage]:
        """Several inputs, fetched concurrently (``max_workers``), in order; index ``start + i``.

        The first failure (by index) is raised.
        """
        if len(values) <= 1 or max_workers <= 1:
            return [self.load(v, start + i) for i, v in enumerate(values)]
        with ThreadPoolExecutor(max_workers=min(max_workers, len(values))) as pool:
            futures = [pool.submit(self.load, v, start + i) for i, v in enumerate(values)]
            return [f.result() for f in futures]
