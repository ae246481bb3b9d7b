"""Bad data: every broken, odd or hostile input gets a counted skip or one clear error naming the path and fix."""
import os
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import face_like, write_images
from facegan.errors import DataError
from facegan.data import find_images, load_images


def test_any_folder_any_format_and_mode(tmp_path):
    rng = np.random.default_rng(0)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    base = face_like(rng, (50, 50))
    base.save(tmp_path / "rgb.jpg")
    base.save(tmp_path / "a" / "rgb.webp")
    base.save(nested / "rgb.bmp")
    base.convert("L").save(nested / "gray.png")
    base.convert("RGBA").save(nested / "rgba.png")
    base.convert("P").save(nested / "palette.gif")
    base.convert("CMYK").save(nested / "cmyk.jpg")
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(nested / "sixteen.png")
    base.save(nested / "UPPER.JPEG")
    images = load_images(tmp_path, 32, progress=False)
    assert images.shape == (9, 3, 32, 32)
    sixteen = find_images(tmp_path).members.index("a/b/sixteen.png")
    assert abs(int(images[sixteen].float().mean()) - 40000 // 256) <= 1


def test_corrupt_files_are_skipped_with_one_counting_warning(tmp_path):
    write_images(tmp_path, 5)
    (tmp_path / "fake.jpg").write_bytes(b"this is not a jpeg")
    good = (tmp_path / "000001.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "empty.png").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = load_images(tmp_path, 32, progress=False)
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1 and "skipped 3 unreadable" in messages[0] and "of 8" in messages[0]
    # a truncated JPEG may still decode partially in some PIL builds; the count above proves it was refused
    assert len(images) == 5


def test_no_readable_image_is_a_clear_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of the 1 image files"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_images(tmp_path, 32, progress=False)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "holds no image files"),
    (lambda p: (p / "notes.txt").write_text("hi") and p, "holds no image files"),
    (lambda p: (p / "x.zip").write_bytes(b"PK junk") and p / "x.zip", "not a readable zip"),
])
def test_bad_sources_name_the_path_and_the_fix(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        find_images(path)
    assert str(path) in str(info.value) and "--data synthetic" in str(info.value)


def test_empty_zip(tmp_path):
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()
    with pytest.raises(DataError, match="holds no image files"):
        find_images(tmp_path / "empty.zip")


def test_symlink_loop_is_read_once(tmp_path):
    write_images(tmp_path / "faces", 3)
    os.symlink(tmp_path, tmp_path / "faces" / "loop")
    assert len(find_images(tmp_path).members) == 3


def test_decompression_bombs_are_refused_and_tiny_images_work(tmp_path):
    write_images(tmp_path, 2)
    Image.new("L", (8000, 8000)).save(tmp_path / "bomb.png")  # 64 megapixels in a few kB
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "tiny.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = load_images(tmp_path, 32, progress=False)
    assert len(images) == 3
    message = next(str(w.message) for w in caught if "unreadable" in str(w.message))
    assert "skipped 1" in message and "bomb.png" in message and "pixels" in message
    tiny = find_images(tmp_path).members.index("tiny.png") - 1  # after bomb.png was skipped
    assert images[tiny, 0].float().mean() > 190


def test_files_that_only_claim_to_be_images(tmp_path):
    write_images(tmp_path, 2)
    (tmp_path / "script.png").write_text("#!/bin/sh\necho not an image\n")
    (tmp_path / "archive.jpg").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(load_images(tmp_path, 32, progress=False)) == 2
    assert any("skipped 2 unreadable" in str(w.message) for w in caught)


def test_zip_read_in_place_never_writes_its_entries_anywhere(tmp_path):
    rng = np.random.default_rng(1)
    buffer = tmp_path / "evil.zip"
    with zipfile.ZipFile(buffer, "w") as z:
        for name in ("../../escaped.jpg", "/abs/olute.jpg", "ok/face.jpg"):
            image = tmp_path / "x.jpg"
            face_like(rng).save(image)
            z.write(image, name)
    before = set(os.listdir(tmp_path.parent))
    assert len(load_images(buffer, 32, progress=False)) == 3  # read as data, nothing extracted
    assert set(os.listdir(tmp_path.parent)) == before and not (tmp_path / "abs").exists()


def test_truncated_zip(tmp_path):
    folder = write_images(tmp_path / "faces", 3)
    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as z:
        for name in sorted(os.listdir(folder)):
            z.write(os.path.join(folder, name), name)
    data = (tmp_path / "faces.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a readable zip"):
        find_images(tmp_path / "cut.zip")
