import hashlib
import io
import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_smalldata.data import verify_images
from tests.conftest import write_picture


def _jpeg_bytes(seed=0, size=48):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def messy(tmp_path):
    """A class-folder dataset with every kind of bad file a user meets."""
    root = tmp_path / "PetImages"
    good = [
        write_picture(root / "Cat" / "0.jpg", seed=1, fmt="JPEG"),
        write_picture(root / "Cat" / "1.png", seed=2, fmt="PNG"),
        write_picture(root / "Dog" / "0.jpg", seed=3, fmt="JPEG"),
        write_picture(root / "Dog" / "1.gif", seed=4, fmt="GIF"),
        write_picture(root / "Dog" / "2.bmp", seed=5, fmt="BMP"),
        write_picture(root / "Dog" / "grey.jpg", seed=6, fmt="JPEG", mode="L"),
        # A PNG with a .jpg name loads fine: decode_image reads the content.
        write_picture(root / "Dog" / "png_named.jpg", seed=7, fmt="PNG"),
    ]
    bad = {}
    (root / "Cat" / "666.jpg").write_bytes(b"")
    bad["Cat/666.jpg"] = "empty"
    (root / "Cat" / "html.jpg").write_bytes(b"<html><body>404 Not Found</body></html>")
    bad["Cat/html.jpg"] = "not an image"
    full = _jpeg_bytes(seed=8)
    (root / "Dog" / "truncated.jpg").write_bytes(full[: len(full) // 3])
    bad["Dog/truncated.jpg"] = "corrupt"
    damaged = bytearray(_jpeg_bytes(seed=9))
    damaged[4:60] = b"\x00" * 56  # wipe the JPEG headers after the first marker
    (root / "Dog" / "damaged.jpg").write_bytes(bytes(damaged))
    bad["Dog/damaged.jpg"] = "corrupt"
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, format="PNG")
    (root / "Cat" / "cut.png").write_bytes(png.getvalue()[:30])
    bad["Cat/cut.png"] = "corrupt"
    write_picture(root / "Cat" / "tiff_named.jpg", seed=10, fmt="TIFF")
    bad["Cat/tiff_named.jpg"] = "unsupported format"
    write_picture(root / "Cat" / "photo.tiff", seed=11, fmt="TIFF")
    (root / "Dog" / "Thumbs.db").write_bytes(b"\x00\x01junk")
    return root, good, bad


def _digests(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_finds_every_bad_file_and_only_those(messy):
    root, good, bad = messy
    report = verify_images(root, verbose=0)
    found = {str(p.path.relative_to(root)): p.reason for p in report.problems}
    assert found == bad
    assert report.checked == len(good) + len(bad)
    assert not report.ok
    assert {p.path.name for p in report.skipped} == {"photo.tiff", "Thumbs.db"}
    counts = report.counts()
    assert counts == {
        "loads": 7, "empty": 1, "not an image": 1, "unsupported format": 1,
        "corrupt": 3, "skipped by loader": 2,
    }


def test_verdict_matches_the_keras_loader(messy):
    """Every file we call good loads through the Keras loader; every bad one fails."""
    root, good, bad = messy
    report = verify_images(root, verbose=0)
    import tensorflow as tf

    for path in good:
        tf.image.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    for problem in report.problems:
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.image.decode_image(
                tf.io.read_file(str(problem.path)), channels=3, expand_animations=False
            )


def test_report_prints_as_a_table(messy):
    root, _, _ = messy
    text = str(verify_images(root, verbose=0))
    assert "Checked 13 pictures" in text
    assert "Dog/truncated.jpg" in text and "corrupt" in text
    assert "Cat/666.jpg" in text and "empty" in text


def test_quarantine_moves_every_byte_and_then_the_loader_works(messy):
    root, good, bad = messy
    bad_paths = [root / rel for rel in bad]
    bad_bytes = {rel: (root / rel).read_bytes() for rel in bad}
    good_before = _digests(good)

    report = verify_images(root, quarantine=True, verbose=0)

    quarantine = root.parent / "PetImages_quarantine"
    assert report.quarantine_dir == quarantine
    for rel, content in bad_bytes.items():
        assert not (root / rel).exists()
        assert (quarantine / rel).read_bytes() == content
    assert set(report.moved) == set(bad_paths)
    assert _digests(good) == good_before
    assert (root / "Cat" / "photo.tiff").exists()  # skipped files are not moved
    saved = json.loads((quarantine / "report.json").read_text())
    assert saved["counts"]["corrupt"] == 3
    assert "truncated.jpg" in (quarantine / "report.txt").read_text()

    # With the bad files gone the Keras loader reads the whole folder.
    dataset = keras.utils.image_dataset_from_directory(root, image_size=(32, 32), batch_size=4)
    assert sum(int(x.shape[0]) for x, _ in dataset) == len(good)
    assert verify_images(root, verbose=0).ok


def test_quarantine_never_overwrites(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"first")
    verify_images(root, quarantine=True, verbose=0)
    (root / "a" / "x.jpg").write_bytes(b"second")
    report = verify_images(root, quarantine=True, verbose=0)
    moved = report.moved[root / "a" / "x.jpg"]
    assert moved.name == "x.1.jpg"
    assert (tmp_path / "data_quarantine" / "a" / "x.jpg").read_bytes() == b"first"
    assert moved.read_bytes() == b"second"


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        verify_images(tmp_path / "nowhere")
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="inside the folder"):
        verify_images(tmp_path / "d", quarantine=True, quarantine_dir=tmp_path / "d" / "q")
    with pytest.raises(ValueError, match="only used with quarantine=True"):
        verify_images(tmp_path / "d", quarantine_dir=tmp_path / "q")


def test_clean_folder_is_ok(tmp_path):
    write_picture(tmp_path / "c" / "x" / "1.jpg", fmt="JPEG")
    report = verify_images(tmp_path / "c", verbose=0)
    assert report.ok and report.checked == 1 and report.problems == []
