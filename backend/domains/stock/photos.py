"""Vehicle photos: decoded and re-encoded by Pillow (never stored as uploaded), with a thumbnail.

Files live under ``<var_dir>/media/vehicles/`` named by a random key; the uploaded name is never used.
Anything Pillow cannot read as JPEG, PNG or WebP is refused.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

MAX_PHOTO_BYTES = 15 * 1024 * 1024
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


def media_dir() -> Path:
    return get_settings().var_dir / "media" / "vehicles"


def process(data: bytes) -> ProcessedPhoto:
    """Decode, orient, resize and re-encode as JPEG (dropping metadata such as GPS positions)."""
    if not data:
        raise PhotoError(_("The file is empty."))
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoError(_("The photo is larger than %(mb)s MB.", mb=MAX_PHOTO_BYTES // (1024 * 1024)))
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ACCEPTED_FORMATS:
                raise PhotoError(_("Upload a JPEG, PNG or WebP photo."))
            if probe.width * probe.height > MAX_PIXELS:
                raise PhotoError(_("The photo has too many pixels."))
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
            full = _jpeg(image, FULL_SIZE, quality=82)
            thumbnail = _jpeg(image, THUMB_SIZE, quality=75)
            width, height = _fitted(image.size, FULL_SIZE)
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoError(_("This file is not a photo we can read. Upload a JPEG, PNG or WebP photo.")) from exc
    return ProcessedPhoto(full=full, thumbnail=thumbnail, width=width, height=height)


def _fitted(size: tuple[int, int], limit: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, limit / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _jpeg(image: Image.Image, limit: int, quality: int) -> bytes:
    copy = image.copy()
    copy.thumbnail((limit, limit), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def new_key() -> str:
    return secrets.token_hex(16)


def store(key: str, photo: ProcessedPhoto) -> None:
    """Write both files atomically (a temporary name, then a rename)."""
    folder = media_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((f"{key}.jpg", photo.full), (f"{key}-thumb.jpg", photo.thumbnail)):
        temporary = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        temporary.write_bytes(content)
        os.replace(temporary, folder / name)


def remove(key: str) -> None:
    for name in (f"{key}.jpg", f"{key}-thumb.jpg"):
        (media_dir() / name).unlink(missing_ok=True)


def path_for(file_name: str) -> Path | None:
    """The file behind a URL name, or None for anything that is not one of ours."""
    if not FILE_NAME.match(file_name):
        return None
    path = media_dir() / file_name
    return path if path.is_file() else None


def url(key: str, *, thumbnail: bool = False) -> str:
    return f"/media/vehicles/{key}{'-thumb' if thumbnail else ''}.jpg"
