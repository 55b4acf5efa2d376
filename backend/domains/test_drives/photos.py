"""Driving-licence photos taken at check-out, under ``<var_dir>/media/test-drives/``. Private: served only to
the branch's staff, and sealed at rest (AES-GCM under a key derived from the app secret) because a Chinese
licence shows the holder's identity card number. See :mod:`backend.lib.photos` for how uploads are checked
and re-encoded, and ``forecourt seal-licence-photos`` for photos stored before sealing."""

from __future__ import annotations

from backend.lib.photos import PhotoError, PhotoStore, ProcessedPhoto

MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_SEAL = "driving-licence-photo"  # the purpose the sealing key is derived for
STORE = PhotoStore("test-drives", MAX_PHOTO_BYTES, sealed_purpose=PHOTO_SEAL)

process = STORE.process
new_key = STORE.new_key
store = STORE.store
remove = STORE.remove
media_dir = STORE.media_dir
parse_name = STORE.parse_name
read = STORE.read
seal_existing = STORE.seal_existing

__all__ = ["MAX_PHOTO_BYTES", "PHOTO_SEAL", "PhotoError", "ProcessedPhoto", "media_dir", "new_key", "parse_name",
           "process", "read", "remove", "seal_existing", "store"]
