"""Driving-licence photos taken at check-out, under ``<var_dir>/media/test-drives/``. Private: served only to
the branch's staff (see :mod:`backend.lib.photos` for how uploads are checked and re-encoded)."""

from __future__ import annotations

from backend.lib.photos import PhotoError, PhotoStore, ProcessedPhoto

MAX_PHOTO_BYTES = 10 * 1024 * 1024
STORE = PhotoStore("test-drives", MAX_PHOTO_BYTES)

process = STORE.process
new_key = STORE.new_key
store = STORE.store
remove = STORE.remove
media_dir = STORE.media_dir
parse_name = STORE.parse_name
path_for = STORE.path

__all__ = ["MAX_PHOTO_BYTES", "PhotoError", "ProcessedPhoto", "media_dir", "new_key", "parse_name", "path_for",
           "process", "remove", "store"]
