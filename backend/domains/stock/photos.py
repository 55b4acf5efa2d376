"""Vehicle photos under ``<var_dir>/media/vehicles/``, public at ``/media/vehicles/<key>.jpg``
(see :mod:`backend.lib.photos` for how uploads are checked and re-encoded)."""

from __future__ import annotations

from pathlib import Path

from backend.lib.photos import PhotoError, PhotoStore, ProcessedPhoto

MAX_PHOTO_BYTES = 15 * 1024 * 1024
STORE = PhotoStore("vehicles", MAX_PHOTO_BYTES)

process = STORE.process
new_key = STORE.new_key
store = STORE.store
remove = STORE.remove
media_dir = STORE.media_dir


def path_for(file_name: str) -> Path | None:
    """The file behind a URL name, or None for anything that is not one of ours."""
    parsed = STORE.parse_name(file_name)
    return STORE.path(*parsed) if parsed else None


def url(key: str, *, thumbnail: bool = False) -> str:
    return f"/media/vehicles/{key}{'-thumb' if thumbnail else ''}.jpg"


__all__ = ["MAX_PHOTO_BYTES", "PhotoError", "ProcessedPhoto", "media_dir", "new_key", "path_for", "process",
           "remove", "store", "url"]
