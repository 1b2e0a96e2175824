"""Bounded gzip decompression, shared by the filter and the relations recorder.

Why: ``gzip.decompress`` (or one ``decompress(body, max + 1)`` call) builds
the whole output, so a small "bomb" answer grows the process by far more
than the limit before it is refused (over 110 MiB measured at a 64 MiB
limit). Here the input is inflated piece by piece, at most ``STEP`` bytes of
output at a time, into one buffer that is refused as soon as it passes
``max_size``: memory stays within ``max_size + STEP``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

#: Output produced per ``decompress`` call.
STEP = 64 * 1024


class InflateError(ValueError):
    """Not a complete, single gzip stream (``too_large`` False), or larger than allowed."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def gunzip_bounded(pieces: Iterable[bytes], max_size: int) -> bytearray:
    """The gunzipped ``pieces``; :class:`InflateError` past ``max_size`` or when malformed.

    Trailing bytes after the gzip stream (a second member, garbage) are an
    error: what is checked must be all that a client's decoder would see.
    """
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        for piece in pieces:
            data = piece
            while True:
                if decompressor.eof:
                    if data or decompressor.unused_data:
                        raise InflateError("data after the end of the gzip stream")
                    break
                chunk = decompressor.decompress(data, STEP)
                out += chunk
                if len(out) > max_size:
                    raise InflateError("inflates past the limit", too_large=True)
                data = decompressor.unconsumed_tail
                if not data and len(chunk) < STEP:
                    break
    except zlib.error as exc:
        raise InflateError(f"not gzip: {exc}") from None
    if not decompressor.eof:
        raise InflateError("the gzip stream is truncated")
    if decompressor.unused_data:
        raise InflateError("data after the end of the gzip stream")
    return out
