"""Image inputs: ``{"image": …}`` is an http(s) URL or base64 (with or without a ``data:`` prefix).

:func:`load_image` turns one such value into ``[height, width, 3]`` RGB uint8 pixels, or raises
:class:`labelwise.errors.InvalidImage` (400) naming the input index and the reason. URLs are
fetched under an SSRF policy (:mod:`labelwise.images.fetch`); bytes are sniffed and size-checked
before decoding (:mod:`labelwise.images.decode`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from labelwise.errors import InvalidImage, PixelLimitExceeded, RequestTimeout
from labelwise.images.decode import (
    ImageLimits,
    decode_base64,
    decode_image,
    image_error,
    image_pixels,
    sniff_format,
)
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
    "image_pixels",
    "sniff_format",
]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

RGBImage = npt.NDArray[np.uint8]

#: Image URLs fetched at once per request.
FETCH_WORKERS = 4
#: Decoded images alive at once per request: a chunk holds at most this many images ...
CHUNK_IMAGES = 8
#: ... and at most this many pixels (a single larger image, up to ``max_pixels``, is a chunk alone).
CHUNK_PIXELS = 16_000_000


class ImageLoader:
    """Loads image inputs (URL or base64) under the limits in Settings. Thread-safe; one per process.

    A request's images go through :meth:`chunks`: every input is fetched (URLs ``fetch_workers`` at
    a time, all under one deadline of ``fetch_deadline_s``) and its header read, the request's pixel
    total is checked against ``limits.max_request_pixels``, and only then are the images decoded, a
    bounded chunk at a time."""

    def __init__(
        self,
        limits: ImageLimits,
        fetcher: ImageFetcher,
        fetch_deadline_s: float = 15.0,
        fetch_workers: int = FETCH_WORKERS,
    ) -> None:
        self.limits = limits
        self.fetcher = fetcher
        self.fetch_deadline_s = fetch_deadline_s
        self.fetch_workers = fetch_workers

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLoader:
        limits = ImageLimits(
            max_bytes=settings.image_max_bytes,
            max_pixels=settings.image_max_pixels,
            max_request_pixels=settings.max_request_pixels,
        )
        policy = FetchPolicy(
            max_bytes=settings.image_max_bytes,
            timeout_s=settings.image_fetch_timeout_s,
            max_redirects=settings.image_max_redirects,
        )
        return cls(limits, ImageFetcher(policy), fetch_deadline_s=settings.image_fetch_deadline_s)

    def load_bytes(self, value: str, index: int, deadline: float | None = None) -> bytes:
        """The encoded image bytes of one input (fetched or base64-decoded), size-checked, not decoded.
        ``deadline`` (``time.monotonic()``) bounds a fetch besides its own timeout."""
        text = value.strip()
        scheme = _SCHEME.match(text)
        if scheme:
            if scheme.group(1).lower() not in ("http", "https"):
                raise image_error(index, f"only http(s) URLs are fetched, not {scheme.group(1).lower()!r}")
            return self.fetcher.fetch(text, index, deadline)
        return decode_base64(text, index, self.limits.max_bytes)

    def load(self, value: str, index: int) -> RGBImage:
        """One input as ``[height, width, 3]`` RGB uint8."""
        return decode_image(self.load_bytes(value, index), index, self.limits)

    def load_all(self, values: Sequence[str], start: int = 0) -> list[RGBImage]:
        """Several inputs, fetched concurrently, in order; index ``start + i``. The first failure (by
        index) is raised. All are decoded: a request's images go through :meth:`chunks` instead."""
        indices = [start + i for i in range(len(values))]
        return [image for chunk in self.chunks(values, indices) for image in chunk]

    # ------------------------------------------------------------------------- one request's images
    def _timed_out(self, index: int) -> RequestTimeout:
        return RequestTimeout(
            f"Fetching the request's image URLs took longer than {self.fetch_deadline_s:g} s "
            f"(`image_fetch_deadline_s`); `input[{index}]` was not fetched in time. Send fewer URLs per "
            "request, or the images themselves (base64)."
        )

    def _checked_bytes(self, value: str, index: int, deadline: float) -> tuple[bytes, int]:
        """One input's bytes and pixel count (from the header), under the request's deadline."""
        if time.monotonic() >= deadline:
            raise self._timed_out(index)
        try:
            data = self.load_bytes(value, index, deadline)
        except InvalidImage:
            if time.monotonic() >= deadline:
                raise self._timed_out(index) from None
            raise
        return data, image_pixels(data, index, self.limits)

    def checked_bytes(self, values: Sequence[str], indices: Sequence[int]) -> tuple[list[bytes], list[int]]:
        """Every input's encoded bytes and pixel count, nothing decoded: URLs fetched concurrently
        under one deadline, per-image limits checked from the headers, then the request's total.

        Raises the first failure by index: InvalidImage, RequestTimeout (the deadline passed; fetches
        not started are abandoned, running ones are cut at it) or PixelLimitExceeded."""
        deadline = time.monotonic() + self.fetch_deadline_s
        results: list[tuple[bytes, int]] = []
        total = 0
        urls = sum(1 for v in values if _SCHEME.match(v.strip()))
        if urls <= 1 or self.fetch_workers <= 1:
            for value, index in zip(values, indices, strict=True):
                results.append(self._checked_bytes(value, index, deadline))
                total += results[-1][1]
                self._check_total(total, index)
        else:
            pool = ThreadPoolExecutor(max_workers=min(self.fetch_workers, urls))
            try:
                futures = [
                    pool.submit(self._checked_bytes, value, index, deadline)
                    for value, index in zip(values, indices, strict=True)
                ]
                for future, index in zip(futures, indices, strict=True):
                    results.append(future.result())
                    total += results[-1][1]
                    self._check_total(total, index)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return [data for data, _ in results], [pixels for _, pixels in results]

    def _check_total(self, total: int, index: int) -> None:
        limit = self.limits.max_request_pixels
        if total > limit:
            raise PixelLimitExceeded(
                f"The request's images have more than {limit / 1e6:g} megapixels in all "
                f"(`max_request_pixels`; {total / 1e6:.1f} by `input[{index}]`, read from their headers). "
                "Send fewer or smaller images per request."
            )

    def chunks(
        self,
        values: Sequence[str],
        indices: Sequence[int],
        max_images: int = CHUNK_IMAGES,
        max_pixels: int = CHUNK_PIXELS,
    ) -> Iterator[list[RGBImage]]:
        """The inputs decoded in order, a chunk at a time (at most ``max_images`` images and
        ``max_pixels`` pixels, or one larger image): the caller embeds a chunk and drops it before
        the next is decoded. Everything is fetched and size-checked first (:meth:`checked_bytes`)."""
        data, pixels = self.checked_bytes(values, indices)
        start = 0
        while start < len(data):
            end, total = start, 0
            while end < len(data) and end - start < max_images:
                if end > start and total + pixels[end] > max_pixels:
                    break
                total += pixels[end]
                end += 1
            chunk = [decode_image(data[i], indices[i], self.limits) for i in range(start, end)]
            for i in range(start, end):
                data[i] = b""  # the encoded bytes are no longer needed either
            yield chunk
            del chunk
            start = end
