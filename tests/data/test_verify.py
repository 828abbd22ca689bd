import hashlib
import io
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from keras_smalldata.data import verify_images
from keras_smalldata.data.verify import PROBLEMS
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
        "corrupt": 3, "broken link": 0, "not a file": 0, "unreadable": 0,
        "unreadable folder": 0, "skipped by loader": 2,
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


def test_options_are_keyword_only(tmp_path):
    with pytest.raises(TypeError):
        verify_images(tmp_path, True)


def test_report_prints_as_a_table(messy):
    root, _, _ = messy
    lines = str(verify_images(root, verbose=0)).splitlines()
    assert lines[:9] == [
        f"Checked 13 pictures in {root}",
        "result              files",
        "------------------  -----",
        "loads                   7",
        "empty                   1",
        "not an image            1",
        "unsupported format      1",
        "corrupt                 3",
        "skipped by loader       2",
    ]
    rows = {line.split()[0]: line.split()[1] for line in lines[12:]}
    assert rows["Dog/truncated.jpg"] == "corrupt" and rows["Cat/666.jpg"] == "empty"
    assert len(rows) == 6 + 2  # every problem and every skipped file, one row each


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
    text_file, json_file = report.report_files
    assert (text_file.parent, json_file.parent) == (quarantine, quarantine)
    saved = json.loads(json_file.read_text())
    assert saved["counts"]["corrupt"] == 3
    assert saved["report_files"] == [str(text_file), str(json_file)]
    assert "truncated.jpg" in text_file.read_text()

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


def test_reports_never_overwrite_a_users_files_or_earlier_reports(tmp_path):
    """Issue 23: report.txt / report.json of the user's, and the first run's report, were overwritten."""
    root, quarantine = tmp_path / "data", tmp_path / "q"
    (root / "a").mkdir(parents=True)
    quarantine.mkdir()
    mine = {"report.txt": b"my notes\n", "report.json": b'{"mine": true}\n'}
    for name, content in mine.items():
        (quarantine / name).write_bytes(content)
    (root / "a" / "x.jpg").write_bytes(b"first")
    first = verify_images(root, quarantine=True, quarantine_dir=quarantine, verbose=0)
    (root / "a" / "y.jpg").write_bytes(b"second")
    second = verify_images(root, quarantine=True, quarantine_dir=quarantine, verbose=0)

    for name, content in mine.items():
        assert (quarantine / name).read_bytes() == content
    assert len(set(first.report_files) | set(second.report_files)) == 4
    for report, moved in ((first, "a/x.jpg"), (second, "a/y.jpg")):
        text_file, json_file = report.report_files
        assert text_file.name.startswith("report-") and text_file.suffix == ".txt"
        assert json_file == text_file.with_suffix(".json")
        assert [p["path"] for p in json.loads(json_file.read_text())["problems"]] == [
            str(root / moved)
        ]
        assert text_file.read_text() == str(report) + "\n"
        assert f"Report saved as {text_file} and {json_file}" in str(report)
    reports = sorted(p.name for p in quarantine.iterdir() if p.name.startswith("report-"))
    assert len(reports) == 4
    assert not [p for p in quarantine.iterdir() if p.name.startswith(".")]  # no temporary left


def test_no_report_is_written_without_quarantine(messy):
    root, _, _ = messy
    report = verify_images(root, verbose=0)
    assert report.report_files == [] and "Report saved" not in str(report)


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


# --- entries the loader meets that are not plain pictures (issue 14 items 6, 13) --


def keras_loads(folder, color_mode="rgb"):
    """The reference: does the Keras loader get through every picture of ``folder``?"""
    dataset = keras.utils.image_dataset_from_directory(
        folder, labels=None, image_size=(8, 8), color_mode=color_mode, batch_size=1,
        shuffle=False, verbose=False,
    )
    try:
        for _ in dataset:
            pass
    except Exception:  # noqa: BLE001 - any failure of the loader counts
        return False
    return True


@pytest.fixture
def no_hang():
    """Fails the test instead of hanging for ever (a FIFO that gets opened)."""
    def alarm(signum, frame):
        raise TimeoutError("verify_images blocked on a file")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_broken_links_and_pipes_are_reported(tmp_path, no_hang):
    root = tmp_path / "data"
    write_picture(root / "cat" / "ok.png", fmt="PNG")
    (root / "cat" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (root / "cat" / "loop.jpg").symlink_to(root / "cat" / "loop.jpg")
    os.mkfifo(root / "cat" / "pipe.png")
    report = verify_images(root, verbose=0)
    found = {p.path.name: (p.reason, p.detail) for p in report.problems}
    assert set(found) == {"gone.jpg", "loop.jpg", "pipe.png"}
    assert found["gone.jpg"] == ("broken link", f"link to {str(tmp_path / 'deleted.jpg')!r}, which does not exist")
    assert found["loop.jpg"][0] == "broken link"
    assert found["pipe.png"][0] == "not a file" and "named pipe" in found["pipe.png"][1]
    assert report.checked == 4 and report.counts()["loads"] == 1
    # Each one on its own breaks the Keras loader.
    os.remove(root / "cat" / "pipe.png")  # (the loader would wait on it for ever)
    assert not keras_loads(root)
    moved = verify_images(root, quarantine=True, verbose=0).moved
    assert {p.name for p in moved} == {"gone.jpg", "loop.jpg"}
    assert all(os.path.islink(target) for target in moved.values())  # the links, moved
    assert keras_loads(root)


def test_an_unreadable_file_is_reported_and_the_scan_goes_on(messy, monkeypatch):
    root, good, bad = messy
    locked = root / "Cat" / "0.jpg"
    real_read = Path.read_bytes

    def read(path):  # file modes do not stop root, who may run the tests
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read)
    report = verify_images(root, verbose=0)
    found = {str(p.path.relative_to(root)): p.reason for p in report.problems}
    assert found == {**bad, "Cat/0.jpg": "unreadable"}
    assert report.counts()["unreadable"] == 1 and report.counts()["loads"] == len(good) - 1


def test_a_folder_that_cannot_be_listed_is_reported(messy, monkeypatch):
    root, good, bad = messy
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == root / "Dog":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = verify_images(root, verbose=0)
    reasons = {str(p.path.relative_to(root)): p.reason for p in report.problems}
    assert reasons["Dog"] == "unreadable folder"
    assert {k for k in reasons if k.startswith("Dog/")} == set()
    assert report.counts()["unreadable folder"] == 1
    assert report.counts()["loads"] == 2  # Cat/0.jpg and Cat/1.png
    quarantined = verify_images(root, quarantine=True, verbose=0)
    assert root / "Dog" not in quarantined.moved and (root / "Dog").is_dir()


def test_links_to_folders_are_followed_once(tmp_path):
    root = tmp_path / "data"
    outside = tmp_path / "elsewhere"
    (outside / "bad.jpg").parent.mkdir(parents=True)
    (outside / "bad.jpg").write_bytes(b"<html>")
    root.mkdir()
    (root / "linked").symlink_to(outside)  # the loader reads a linked class folder
    (outside / "again").symlink_to(outside)  # a loop
    report = verify_images(root, verbose=0)
    assert [str(p.path.relative_to(root)) for p in report.problems] == ["linked/bad.jpg"]


# --- the quarantine folder is checked before the scan (issue 14 item 14) -----


@pytest.fixture
def count_reads(monkeypatch):
    """The files the scan reads (it reads every file it checks)."""
    calls = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: calls.append(path) or real(path))
    return calls


def test_a_quarantine_dir_that_is_a_file_is_refused_before_the_scan(messy, tmp_path, count_reads):
    root, _, bad = messy
    (tmp_path / "q").write_text("my notes")
    with pytest.raises(FileExistsError, match=r"quarantine_dir='.*q' is a file, not a folder"):
        verify_images(root, quarantine=True, quarantine_dir=tmp_path / "q", verbose=0)
    with pytest.raises(FileExistsError, match=r"is inside '.*q', a file"):
        verify_images(root, quarantine=True, quarantine_dir=tmp_path / "q" / "sub", verbose=0)
    assert count_reads == []
    assert (tmp_path / "q").read_text() == "my notes"
    assert all((root / rel).exists() for rel in bad)


def test_a_quarantine_dir_that_cannot_be_written_is_refused_before_the_scan(messy, tmp_path, monkeypatch, count_reads):
    root, _, _ = messy
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path and real_access(p, mode))
    with pytest.raises(PermissionError, match="cannot be written to"):
        verify_images(root, quarantine=True, quarantine_dir=tmp_path / "q", verbose=0)
    assert count_reads == []


def test_more_bad_arguments(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="`quarantine_dir` must be a folder path"):
        verify_images(tmp_path / "d", quarantine=True, quarantine_dir="")
    with pytest.raises(TypeError, match="`quarantine` must be True or False"):
        verify_images(tmp_path / "d", quarantine="yes")
    with pytest.raises(ValueError, match="Did you mean 'grayscale'"):
        verify_images(tmp_path / "d", color_mode="greyscale")
    with pytest.raises(ValueError, match="Received: verbose=-1"):
        verify_images(tmp_path / "d", verbose=-1)


def test_the_default_quarantine_of_the_current_folder_is_its_sibling(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"junk")
    monkeypatch.chdir(root)
    report = verify_images(".", quarantine=True, verbose=0)
    assert report.quarantine_dir == tmp_path / "data_quarantine"
    assert (tmp_path / "data_quarantine" / "a" / "x.jpg").read_bytes() == b"junk"


def test_a_file_that_cannot_be_moved_stays_and_is_reported(messy, monkeypatch):
    root, _, bad = messy
    real_move = shutil.move

    def move(source, target):
        if source.endswith("html.jpg"):
            raise PermissionError(13, "Permission denied")
        return real_move(source, target)

    monkeypatch.setattr(shutil, "move", move)
    report = verify_images(root, quarantine=True, verbose=0)
    assert set(report.not_moved) == {root / "Cat" / "html.jpg"}
    assert (root / "Cat" / "html.jpg").exists()
    assert len(report.moved) == len(bad) - 1
    saved = json.loads(report.report_files[1].read_text())
    assert [p["not_moved"] for p in saved["problems"] if p["not_moved"]] == [
        "PermissionError: [Errno 13] Permission denied"
    ]
    assert "not moved: PermissionError" in str(report)


# --- the verdict is the loader's (WebP, color modes) ---------------------------


def _picture_bytes(fmt, mode="RGB", size=8, seed=0):
    channels = {"L": (size, size), "RGB": (size, size, 3), "RGBA": (size, size, 4)}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, channels, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt, mode, color_mode, reason",
    [
        ("WEBP", "RGB", "rgb", None),  # decode_image reads WebP: it loads
        ("WEBP", "RGBA", "rgb", "unsupported format"),
        ("GIF", "RGB", "grayscale", "unsupported format"),
        ("JPEG", "RGB", "rgba", "unsupported format"),
        ("PNG", "RGBA", "grayscale", None),
    ],
)
def test_the_verdict_is_the_keras_loaders(tmp_path, fmt, mode, color_mode, reason):
    root = tmp_path / "data"
    root.mkdir()
    (root / "picture.jpg").write_bytes(_picture_bytes(fmt, mode))
    report = verify_images(root, verbose=0, color_mode=color_mode)
    if fmt == "WEBP" and not keras_loads(root, "rgb"):
        reason = "unsupported format"  # a TensorFlow whose decode_image has no WebP
    assert [p.reason for p in report.problems] == ([] if reason is None else [reason])
    assert keras_loads(root, color_mode) == (reason is None)


mutations = st.one_of(
    st.just(("none", 0)),
    st.tuples(st.just("truncate"), st.integers(0, 400)),
    st.tuples(st.just("flip"), st.integers(0, 400)),
    st.tuples(st.just("prefix"), st.integers(1, 8)),
)


@settings(max_examples=10, deadline=None)
@given(
    fmt=st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"]),
    mode=st.sampled_from(["L", "RGB", "RGBA"]),
    mutation=mutations,
    color_mode=st.sampled_from(["rgb", "grayscale", "rgba"]),
)
def test_property_verified_means_the_keras_loader_loads_it(fmt, mode, mutation, color_mode):
    """Pictures of every format, whole or damaged: the report agrees with the loader."""
    if fmt in ("JPEG", "BMP") and mode == "RGBA":
        mode = "RGB"
    contents = _picture_bytes(fmt, mode)
    kind, where = mutation
    if kind == "truncate":
        contents = contents[: where % (len(contents) + 1)]
    elif kind == "flip":
        data = bytearray(contents)
        data[where % len(data)] ^= 0xFF
        contents = bytes(data)
    elif kind == "prefix":
        contents = b"\x00" * where + contents
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "p.png").write_bytes(contents)
        report = verify_images(folder, verbose=0, color_mode=color_mode)
        assert report.checked == 1
        assert all(p.reason in PROBLEMS for p in report.problems)
        assert report.ok == keras_loads(folder, color_mode)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1, max_size=10,
).filter(lambda s: s not in (".", "..") and not s.startswith("."))


@settings(max_examples=15, deadline=None)
@given(entries=st.lists(st.tuples(names, st.booleans()), min_size=1, max_size=6,
                        unique_by=lambda t: t[0]))
def test_property_quarantine_moves_exactly_the_bad_files(entries):
    """File names with dots, spaces and unicode: bad ones move, byte for byte, to the same path."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data set"
        expected_bad = {}
        for index, (name, good) in enumerate(entries):
            path = root / "class é" / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            content = _picture_bytes("PNG", seed=index) if good else f"<html>{index}".encode()
            path.write_bytes(content)
            if not good:
                expected_bad[path.relative_to(root)] = content
        report = verify_images(root, quarantine=True, verbose=0)
        quarantine = Path(folder) / "data set_quarantine"
        assert {p.relative_to(root) for p in report.moved} == set(expected_bad)
        for relative, content in expected_bad.items():
            assert (quarantine / relative).read_bytes() == content
            assert not (root / relative).exists()
        assert report.ok == (not expected_bad)
        assert verify_images(root, verbose=0).ok
