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

from . import sealing
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
    """One domain's photos, in ``<var_dir>/media/<folder>/``.

    With ``sealed_purpose`` both files are sealed at rest (AES-GCM, see :mod:`backend.lib.sealing`, the file's
    plain name bound to its content) and kept as ``<name>.jpg.sealed``; :meth:`read` opens them. Photos
    stored plain before sealing was turned on still read, and :meth:`seal_existing` seals them in place.
    """

    SEALED_SUFFIX = ".sealed"

    def __init__(self, folder: str, max_bytes: int, sealed_purpose: str | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.sealed_purpose = sealed_purpose

    def media_dir(self) -> Path:
        return get_settings().var_dir / "media" / self.folder

    def process(self, data: bytes) -> ProcessedPhoto:
        return process(data, self.max_bytes)

    @staticmethod
    def new_key() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def file_name(key: str, thumbnail: bool) -> str:
        """The plain name (the one in URLs; a sealed file adds :attr:`SEALED_SUFFIX`)."""
        return f"{key}{'-thumb' if thumbnail else ''}.jpg"

    def _seal(self, name: str, content: bytes) -> bytes:
        return sealing.seal_bytes(content, self.sealed_purpose, name)

    @staticmethod
    def _write(folder: Path, name: str, content: bytes) -> None:
        """Atomically: a temporary name, then a rename."""
        temporary = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        temporary.write_bytes(content)
        os.replace(temporary, folder / name)

    def store(self, key: str, photo: ProcessedPhoto) -> None:
        """Write both files atomically (sealed when the store seals). Blocking: call it in a thread."""
        folder = self.media_dir()
        folder.mkdir(parents=True, exist_ok=True)
        for thumbnail, content in ((False, photo.full), (True, photo.thumbnail)):
            name = self.file_name(key, thumbnail)
            if self.sealed_purpose:
                self._write(folder, name + self.SEALED_SUFFIX, self._seal(name, content))
            else:
                self._write(folder, name, content)

    def remove(self, key: str) -> None:
        for thumbnail in (False, True):
            name = self.file_name(key, thumbnail)
            for stored in (name, name + self.SEALED_SUFFIX):
                (self.media_dir() / stored).unlink(missing_ok=True)

    @staticmethod
    def parse_name(file_name: str) -> tuple[str, bool] | None:
        """``(key, thumbnail?)`` for one of our file names, None for anything else."""
        match = FILE_NAME.match(file_name or "")
        return (match.group("key"), bool(match.group("thumb"))) if match else None

    def path(self, key: str, thumbnail: bool) -> Path | None:
        """The plain file, if there is one (what a store without sealing serves)."""
        path = self.media_dir() / self.file_name(key, thumbnail)
        return path if path.is_file() else None

    def read(self, key: str, thumbnail: bool) -> bytes | None:
        """The photo's JPEG bytes, opened if sealed; None when missing or when it no longer opens (the secret
        was changed, or the file is not the one its name says). Blocking: call it in a thread."""
        name = self.file_name(key, thumbnail)
        if self.sealed_purpose:
            try:
                blob = (self.media_dir() / (name + self.SEALED_SUFFIX)).read_bytes()
            except FileNotFoundError:
                pass  # stored before sealing was turned on: the plain file below
            else:
                return sealing.open_sealed_bytes(blob, self.sealed_purpose, name)
        try:
            return (self.media_dir() / name).read_bytes()
        except FileNotFoundError:
            return None

    def seal_existing(self) -> int:
        """Seal the plain photos of a sealing store in place and delete the plain files; how many were sealed.
        Running it again seals nothing. Blocking."""
        if not self.sealed_purpose:
            raise ValueError(f"The {self.folder} photos are not sealed.")
        folder = self.media_dir()
        if not folder.is_dir():
            return 0
        count = 0
        for plain in sorted(folder.iterdir()):
            if not FILE_NAME.match(plain.name) or not plain.is_file():
                continue
            # The plain file is the source: a sealed copy left by an interrupted run is simply written again.
            self._write(folder, plain.name + self.SEALED_SUFFIX, self._seal(plain.name, plain.read_bytes()))
            plain.unlink()
            count += 1
        return count
