"""Driving-licence photos are sealed at rest: what is on disk gives nothing away and opens only under the app
secret, as the file it was written as; photos stored plain before sealing still open, and
``forecourt seal-licence-photos`` seals them in place. Car photos of repair orders stay plain."""

import io
import os
import subprocess
import sys

import pytest
from PIL import Image

from backend.domains.repair_orders import photos as car_photos
from backend.domains.test_drives import photos
from backend.lib.photos import ProcessedPhoto
from backend.lib.settings import ROOT, get_settings
from tests.showroom import media_in_tmp  # noqa: F401 - a fixture

KNOWN = b"ID-310101199001011234-" * 64  # a byte pattern the sealed files must not show


def licence_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2000, 1000), (30, 90, 160)).save(out, format="JPEG")
    return out.getvalue()


def recognisable() -> ProcessedPhoto:
    return ProcessedPhoto(full=b"\xff\xd8\xff\xe0" + KNOWN + b"full", thumbnail=b"\xff\xd8\xff\xe0" + KNOWN + b"thumb",
                          width=2, height=1)


def test_a_stored_photo_is_sealed_on_disk_and_opens_as_it_was(media_in_tmp):  # noqa: F811
    processed = photos.process(licence_jpeg())
    key = photos.new_key()
    photos.store(key, processed)
    assert sorted(p.name for p in media_in_tmp.iterdir()) == [f"{key}-thumb.jpg.sealed", f"{key}.jpg.sealed"]
    for name, plain in ((f"{key}.jpg.sealed", processed.full), (f"{key}-thumb.jpg.sealed", processed.thumbnail)):
        blob = (media_in_tmp / name).read_bytes()
        assert not blob.startswith(b"\xff\xd8\xff") and plain[:20] not in blob and plain[-64:] not in blob
    assert photos.read(key, False) == processed.full and photos.read(key, True) == processed.thumbnail
    assert Image.open(io.BytesIO(photos.read(key, False))).size == (1600, 800)
    assert Image.open(io.BytesIO(photos.read(key, True))).size == (480, 240)


def test_a_known_pattern_does_not_survive_and_each_file_gets_its_own_nonce(media_in_tmp):  # noqa: F811
    key, other = photos.new_key(), photos.new_key()
    photos.store(key, recognisable())
    photos.store(other, recognisable())
    first = (media_in_tmp / f"{key}.jpg.sealed").read_bytes()
    assert b"\xff\xd8\xff" not in first[:64] and KNOWN[:24] not in first and b"310101199001011234" not in first
    assert first[8:20] != (media_in_tmp / f"{other}.jpg.sealed").read_bytes()[8:20]  # fresh 96-bit nonces
    assert photos.read(key, False) == recognisable().full


def test_a_file_renamed_as_another_does_not_open(media_in_tmp):  # noqa: F811
    key, other = photos.new_key(), photos.new_key()
    photos.store(key, recognisable())
    photos.store(other, recognisable())
    os.replace(media_in_tmp / f"{key}-thumb.jpg.sealed", media_in_tmp / f"{key}.jpg.sealed")  # thumbnail as full
    assert photos.read(key, False) is None
    os.replace(media_in_tmp / f"{other}.jpg.sealed", media_in_tmp / f"{key}.jpg.sealed")  # another drive's
    assert photos.read(key, False) is None


def test_another_secret_tampering_or_a_missing_file_open_nothing(media_in_tmp, monkeypatch):  # noqa: F811
    key = photos.new_key()
    photos.store(key, recognisable())
    assert photos.read(photos.new_key(), False) is None
    sealed = media_in_tmp / f"{key}-thumb.jpg.sealed"
    blob = sealed.read_bytes()
    sealed.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    assert photos.read(key, True) is None
    monkeypatch.setattr(get_settings(), "secret_key", "another-secret-of-at-least-32-characters!")
    assert photos.read(key, False) is None


def test_a_photo_stored_plain_before_sealing_still_opens_and_is_removed(media_in_tmp):  # noqa: F811
    key = photos.new_key()
    media_in_tmp.mkdir(parents=True)
    (media_in_tmp / f"{key}.jpg").write_bytes(b"\xff\xd8\xffplain full")
    assert photos.read(key, False) == b"\xff\xd8\xffplain full" and photos.read(key, True) is None
    photos.remove(key)
    assert list(media_in_tmp.iterdir()) == []


def test_car_photos_of_repair_orders_stay_plain(tmp_path, monkeypatch):
    monkeypatch.setattr(car_photos.STORE, "media_dir", lambda: tmp_path)
    key = car_photos.new_key()
    car_photos.store(key, recognisable())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}-thumb.jpg", f"{key}.jpg"]
    assert car_photos.path_for(key, False).read_bytes() == recognisable().full
    with pytest.raises(ValueError, match="not sealed"):
        car_photos.STORE.seal_existing()


def test_sealing_existing_photos_seals_each_plain_file_once(media_in_tmp):  # noqa: F811
    key, new = photos.new_key(), photos.new_key()
    media_in_tmp.mkdir(parents=True)
    (media_in_tmp / f"{key}.jpg").write_bytes(recognisable().full)
    (media_in_tmp / f"{key}-thumb.jpg").write_bytes(recognisable().thumbnail)
    (media_in_tmp / "notes.txt").write_text("not a photo")
    photos.store(new, recognisable())
    assert photos.seal_existing() == 2
    assert sorted(p.name for p in media_in_tmp.iterdir()) == sorted(
        [f"{key}.jpg.sealed", f"{key}-thumb.jpg.sealed", f"{new}.jpg.sealed", f"{new}-thumb.jpg.sealed", "notes.txt"])
    assert KNOWN[:24] not in (media_in_tmp / f"{key}.jpg.sealed").read_bytes()
    assert photos.read(key, False) == recognisable().full and photos.read(key, True) == recognisable().thumbnail
    assert photos.read(new, True) == recognisable().thumbnail
    assert photos.seal_existing() == 0


def run_cli(var_dir):
    env = os.environ | {"FORECOURT_VAR_DIR": str(var_dir)}
    return subprocess.run([sys.executable, "-m", "backend.cli", "seal-licence-photos"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_the_seal_licence_photos_command_seals_plain_files_and_then_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "media" / "test-drives"
    folder.mkdir(parents=True)
    key = photos.new_key()
    (folder / f"{key}.jpg").write_bytes(recognisable().full)
    first = run_cli(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Sealed 1 licence photo file in" in first.stdout
    assert [p.name for p in folder.iterdir()] == [f"{key}.jpg.sealed"]
    monkeypatch.setattr(photos.STORE, "media_dir", lambda: folder)
    assert photos.read(key, False) == recognisable().full  # sealed under the same app secret
    again = run_cli(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Sealed 0 licence photo files" in again.stdout


def test_the_command_on_a_fresh_install_without_photos(tmp_path):
    done = run_cli(tmp_path)
    assert done.returncode == 0 and "Sealed 0 licence photo files" in done.stdout
