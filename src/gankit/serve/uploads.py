"""Uploaded images: size limits before reading, type checks, decompression-bomb refusal.

An upload is only ever decoded by PIL as one of a few raster formats; nothing uploaded is
unpickled, executed or written anywhere but the server's own temporary folder.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from gankit.errors import GankitError

MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # 32 MiB of file
MAX_UPLOAD_PIXELS = 24_000_000  # 24 megapixels (e.g. 6000 x 4000): translating more takes long
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")  # what browsers can also show


class UploadError(GankitError):
    """An upload the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """A decoded upload: the image a translator takes and what the page shows of it."""

    image: Image.Image  # "L" or "RGB" (label maps: "L" of class indices)
    format: str  # PNG, JPEG, ...
    size: tuple[int, int]  # (width, height)


def check_declared(content_type: str | None, content_length: str | None, max_bytes: int) -> None:
    """Refuse before reading the body: a declared length over the limit (413) or a declared
    type that is not an image (415). A missing length is checked while reading instead."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and not (kind.startswith("image/") or kind == "application/octet-stream"):
        raise UploadError(f"{kind} is not an image: upload a {_formats()} file", 415)
    if content_length is not None:
        try:
            length = int(content_length)
        except ValueError:
            raise UploadError("a Content-Length that is not a number", 400) from None
        if length > max_bytes:
            raise UploadError(
                f"the file has {length:,} bytes, more than the limit of {max_bytes:,}", 413
            )


async def read_limited(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The body, read chunk by chunk and abandoned (413) as soon as it passes ``max_bytes``."""
    parts, total = [], 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise UploadError(f"the file has more than the limit of {max_bytes:,} bytes", 413)
        parts.append(chunk)
    if not total:
        raise UploadError("the upload is empty: choose an image file", 400)
    return b"".join(parts)


def decode_upload(data: bytes, max_pixels: int, labels: bool = False) -> Upload:
    """Decode an uploaded file: (UploadError 415) unless it is a PNG/JPEG/WebP/BMP/GIF image,
    (413) when its width x height is over ``max_pixels`` (checked from the header, before any
    pixel is decompressed), (400) when it is damaged. EXIF orientation is applied; the first
    frame of an animation is used; ``labels`` keeps 8-bit/indexed label maps as indices."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise UploadError(
                        f"{width} x {height} pixels is more than the limit of "
                        f"{max_pixels:,} pixels",
                        413,
                    )
                image_format = str(opened.format)
                opened.verify()  # checksums and structure, without decoding the pixels
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
                opened.load()
                image = _as_translator_input(opened, labels)
    except UploadError:
        raise
    except Image.UnidentifiedImageError:
        raise UploadError(f"not an image: upload a {_formats()} file", 415) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(
            f"the image decompresses to more than {max_pixels:,} pixels (a decompression bomb?)",
            413,
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise UploadError(f"a damaged image ({reason})", 400) from None
    return Upload(image, image_format, image.size)


def _as_translator_input(opened: Image.Image, labels: bool) -> Image.Image:
    if labels:
        if opened.mode not in ("P", "L"):
            raise UploadError(
                f"a {opened.mode} image; this translator takes label maps "
                "(indexed or 8-bit gray PNG)",
                415,
            )
        return Image.fromarray(np.asarray(opened))
    image = ImageOps.exif_transpose(opened)
    return image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy()


def _formats() -> str:
    return ", ".join(ALLOWED_FORMATS[:-1]) + " or " + ALLOWED_FORMATS[-1]
