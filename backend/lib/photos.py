"""Uploaded photos: decoded and re-encoded by Pillow (never kept as uploaded), with a thumbnail.

Each domain keeps its photos in its own folder under ``<var_dir>/media/`` through a
:class:`PhotoStore`; files are named by a random key, never by the uploaded name. Only JPEG, PNG and
WebP that Pillow can decode are accepted, and metadata such as GPS positions is dropped.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .i18n import gettext as _
from .settings import get_settings

MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo; more is refused before decoding
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "MPO"}  # MPO: what some phones call their JPEGs
FULL_SIZE = 1600
THUMB_SIZE = 480
FILE_NAME = re.compile(r"^(?P<key>[0-9a-f]{32})(?P<thumb>-thumb)?\.jpg$")


class PhotoError(ValueError):
    """The upload is not a photo we can use; the message says why."""


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    full: bytes
    thumbnail: bytes
    width: int
    height: int


def _jpeg(image: Image.Image, limit: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    copy = image.copy()
    copy.thumbnail((limit, limit), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue(), copy.size


def process(data: bytes, max_bytes: int) -> ProcessedPhoto:
    """Decode, orient, resize and re-encode as JPEG. CPU-heavy: call it in a thread."""
    if not data:
        raise PhotoError(_("The file is empty."))
    if len(data) > max_bytes:
        raise PhotoError(_("The photo is larger than %(mb)s MB.", mb=max_bytes // (1024 * 1024)))
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ACCEPTED_FORMATS:
                raise PhotoError(_("Upload a JPEG, PNG or WebP photo."))
            if probe.width * probe.height > MAX_PIXELS:
                raise PhotoError(_("The photo has too many pixels."))
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image).convert("RGB")
            full, (width, height) = _jpeg(image, FULL_SIZE, quality=82)
            thumbnail, _size = _jpeg(image, THUMB_SIZE, quality=75)
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoError(_("This file is not a photo we can read. Upload a JPEG, PNG or WebP photo.")) from exc
    return ProcessedPhoto(full=full, thumbnail=thumbnail, width=width, height=height)


class PhotoStore:
    """One domain's photos, in ``<var_dir>/media/<folder>/``."""

    def __init__(self, folder: str, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def media_dir(self) -> Path:
        return get_settings().var_dir / "media" / self.folder

    def process(self, data: bytes) -> ProcessedPhoto:
        return process(data, self.max_bytes)

    @staticmethod
    def new_key() -> str:
        return secrets.token_hex(16)

    def store(self, key: str, photo: ProcessedPhoto) -> None:
        """Write both files atomically (a temporary name, then a rename)."""
        folder = self.media_dir()
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in ((f"{key}.jpg", photo.full), (f"{key}-thumb.jpg", photo.thumbnail)):
            temporary = folder / f".{name}.{secrets.token_hex(4)}.tmp"
            temporary.write_bytes(content)
            os.replace(temporary, folder / name)

    def remove(self, key: str) -> None:
        for name in (f"{key}.jpg", f"{key}-thumb.jpg"):
            (self.media_dir() / name).unlink(missing_ok=True)

    @staticmethod
    def parse_name(file_name: str) -> tuple[str, bool] | None:
        """``(key, thumbnail?)`` for one of our file names, None for anything else."""
        match = FILE_NAME.match(file_name or "")
        return (match.group("key"), bool(match.group("thumb"))) if match else None

    def path(self, key: str, thumbnail: bool) -> Path | None:
        path = self.media_dir() / f"{key}{'-thumb' if thumbnail else ''}.jpg"
        return path if path.is_file() else None
