import hashlib
import os
import tempfile
import unicodedata
from pathlib import Path

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_smalldata.data import make_subsets
from keras_smalldata.data._files import folder_name_problem
from keras_smalldata.data.subsets import class_from_filename
from tests.conftest import write_picture


def _digest_tree(root):
    """{relative path: sha256} of every file below root."""
    result = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return result


@pytest.fixture
def flat_source(tmp_path):
    """Kaggle layout: cat.0.jpg ... cat.11.jpg, dog.0.jpg ... dog.11.jpg."""
    source = tmp_path / "kaggle_train"
    for label_index, label in enumerate(["cat", "dog"]):
        for i in range(12):
            write_picture(source / f"{label}.{i}.jpg", size=32, seed=100 * label_index + i)
    return source


@pytest.fixture
def folder_source(tmp_path):
    """Class-folder layout with unequal classes: 10 ants, 7 bees (png)."""
    source = tmp_path / "insects"
    for label, n in [("ants", 10), ("bees", 7)]:
        for i in range(n):
            write_picture(source / label / f"img_{i}.png", size=32, seed=i)
    return source


def test_flat_layout_in_file_order_like_the_seeds(flat_source, tmp_path):
    before = _digest_tree(flat_source)
    dest = tmp_path / "small"
    summary = make_subsets(flat_source, dest, {"train": 6, "validation": 3, "test": 3})

    assert summary.counts == {
        "train": {"cat": 6, "dog": 6},
        "validation": {"cat": 3, "dog": 3},
        "test": {"cat": 3, "dog": 3},
    }
    # Natural file order: cat.0..cat.5 train, cat.6..cat.8 validation, cat.9..cat.11 test.
    assert sorted(p.name for p in (dest / "train" / "cat").iterdir()) == sorted(
        f"cat.{i}.jpg" for i in range(6)
    )
    assert sorted(p.name for p in (dest / "test" / "dog").iterdir()) == sorted(
        f"dog.{i}.jpg" for i in (9, 10, 11)
    )
    # The copies are byte-identical and the source is untouched.
    assert (dest / "validation" / "dog" / "dog.7.jpg").read_bytes() == (
        flat_source / "dog.7.jpg"
    ).read_bytes()
    assert _digest_tree(flat_source) == before
    assert summary.total() == 24
    assert str(summary).splitlines() == [
        f"Subsets written to {dest}",
        "split       cat  dog  total",
        "----------  ---  ---  -----",
        "train         6    6     12",
        "validation    3    3      6",
        "test          3    3      6",
        "all          12   12     24",
    ]


def test_result_loads_with_image_dataset_from_directory(flat_source, tmp_path):
    dest = tmp_path / "small"
    make_subsets(flat_source, dest, {"train": 5, "validation": 4})
    train = keras.utils.image_dataset_from_directory(
        dest / "train", image_size=(32, 32), batch_size=4, shuffle=False
    )
    assert train.class_names == ["cat", "dog"]
    labels = [int(y) for _, batch in train for y in batch]
    assert labels == [0] * 5 + [1] * 5
    validation = keras.utils.image_dataset_from_directory(
        dest / "validation", image_size=(32, 32), batch_size=4
    )
    assert sum(int(x.shape[0]) for x, _ in validation) == 8


def test_folder_layout_with_fractions_uses_every_picture(folder_source, tmp_path):
    summary = make_subsets(
        folder_source, tmp_path / "out", {"train": 0.6, "validation": 0.2, "test": 0.2}
    )
    # 10 ants -> 6/2/2; 7 bees -> 4.2/1.4/1.4 floors to 4/1/1, the leftover goes to
    # the largest remainder (validation, ties in split order).
    assert summary.counts["train"] == {"ants": 6, "bees": 4}
    assert summary.counts["validation"] == {"ants": 2, "bees": 2}
    assert summary.counts["test"] == {"ants": 2, "bees": 1}
    assert summary.total() == 17
    all_names = {p.name for split in summary.files.values() for p in split["bees"]}
    assert len(all_names) == 7


def test_seed_is_deterministic_and_differs_from_file_order(flat_source, tmp_path):
    a = make_subsets(flat_source, tmp_path / "a", {"train": 4}, seed=7)
    b = make_subsets(flat_source, tmp_path / "b", {"train": 4}, seed=7)
    c = make_subsets(flat_source, tmp_path / "c", {"train": 4})
    names = lambda s: [p.name for p in s.files["train"]["cat"]]  # noqa: E731
    assert names(a) == names(b)
    assert names(c) == [f"cat.{i}.jpg" for i in range(4)]
    assert names(a) != names(c)


def test_hardlink_shares_the_inode(flat_source, tmp_path):
    summary = make_subsets(flat_source, tmp_path / "linked", {"train": 2}, method="hardlink")
    target = summary.files["train"]["dog"][0]
    assert os.stat(target).st_ino == os.stat(flat_source / target.name).st_ino


def test_too_few_pictures_names_class_and_counts(folder_source, tmp_path):
    with pytest.raises(ValueError, match=r"'bees' has 7 pictures, fewer than the 8 requested"):
        make_subsets(folder_source, tmp_path / "out", {"train": 5, "validation": 3})
    assert not (tmp_path / "out").exists()


def test_refuses_non_empty_destination_and_keeps_its_files(flat_source, tmp_path):
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_subsets(flat_source, dest, {"train": 2})
    summary = make_subsets(flat_source, dest, {"train": 2}, exist_ok=True)
    assert (dest / "notes.txt").read_text() == "mine"
    assert summary.total() == 4
    # A second identical run is a no-op; a clash with different bytes is refused.
    make_subsets(flat_source, dest, {"train": 2}, exist_ok=True)
    (dest / "train" / "cat" / "cat.0.jpg").unlink()
    (dest / "train" / "cat" / "cat.0.jpg").write_bytes(b"other")
    with pytest.raises(FileExistsError, match="different content"):
        make_subsets(flat_source, dest, {"train": 2}, exist_ok=True)
    assert (dest / "train" / "cat" / "cat.0.jpg").read_bytes() == b"other"


@pytest.mark.parametrize(
    "splits, error, message",
    [
        ({}, TypeError, "non-empty dict"),
        ({"train": -1}, ValueError, r"splits\['train'\]=-1"),
        ({"train": 1.5}, ValueError, r"fraction must be in \(0, 1\]"),
        ({"train": 0.7, "test": 0.5}, ValueError, "add up to 1.2"),
        ({"train": "10"}, TypeError, "int count or a float fraction"),
    ],
)
def test_bad_splits(flat_source, tmp_path, splits, error, message):
    with pytest.raises(error, match=message):
        make_subsets(flat_source, tmp_path / "out", splits)


def test_bad_arguments(flat_source, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        make_subsets(tmp_path / "missing", tmp_path / "out", {"train": 1})
    with pytest.raises(ValueError, match="method='symlink'"):
        make_subsets(flat_source, tmp_path / "out", {"train": 1}, method="symlink")
    with pytest.raises(ValueError, match="inside source"):
        make_subsets(flat_source, flat_source / "sub", {"train": 1})
    with pytest.raises(ValueError, match=r"classes \['horse'\] not found.*\['cat', 'dog'\]"):
        make_subsets(flat_source, tmp_path / "out", {"train": 1}, classes=["horse"])


def test_flat_names_without_class_are_reported(tmp_path):
    source = tmp_path / "mixed"
    write_picture(source / "cat.1.jpg")
    write_picture(source / "IMG_SUNSET.jpg")
    with pytest.raises(ValueError, match="IMG_SUNSET.jpg.*label_from_filename"):
        make_subsets(source, tmp_path / "out", {"train": 1})
    summary = make_subsets(
        source, tmp_path / "out", {"train": 1}, label_from_filename=lambda n: n.split(".")[0][:3]
    )
    assert summary.class_names == ["IMG", "cat"]


@pytest.mark.parametrize(
    "name, label",
    [("cat.0.jpg", "cat"), ("dog_12.png", "dog"), ("golden-retriever-3.jpeg", "golden-retriever"),
     ("photo.jpg", None), ("12.jpg", None)],
)
def test_class_from_filename(name, label):
    assert class_from_filename(name) == label


# --- one name in two sub-folders of a class (issue 14 item 5) ----------------


def _two_same_names(tmp_path, same):
    source = tmp_path / "nested"
    write_picture(source / "cat" / "a" / "x.jpg", seed=1)
    write_picture(source / "cat" / "b" / "x.jpg", seed=1 if same else 2)
    write_picture(source / "cat" / "c.jpg", seed=3)
    for i in range(3):
        write_picture(source / "dog" / f"{i}.jpg", seed=10 + i)
    return source


def test_one_name_in_two_subfolders_with_other_bytes_keeps_both(tmp_path):
    source = _two_same_names(tmp_path, same=False)
    summary = make_subsets(source, tmp_path / "out", {"train": 2, "test": 1})
    files = summary.files["train"]["cat"] + summary.files["test"]["cat"]
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in files) == [
        "test/cat/c.jpg", "train/cat/a/x.jpg", "train/cat/b/x.jpg",
    ]
    assert (tmp_path / "out/train/cat/b/x.jpg").read_bytes() == (source / "cat/b/x.jpg").read_bytes()
    assert summary.counts == {"train": {"cat": 2, "dog": 2}, "test": {"cat": 1, "dog": 1}}
    # Every count is a file on disk, and the Keras loader reads the sub-folders.
    on_disk = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(on_disk) == summary.total() == 6
    train = keras.utils.image_dataset_from_directory(
        tmp_path / "out" / "train", image_size=(32, 32), batch_size=8, shuffle=False
    )
    assert [int(y) for _, batch in train for y in batch] == [0, 0, 1, 1]


def test_one_name_in_two_subfolders_with_the_same_bytes_counts_both_and_warns(tmp_path):
    source = _two_same_names(tmp_path, same=True)
    with pytest.warns(UserWarning, match="1 picture\\(s\\) are in the source twice"):
        summary = make_subsets(source, tmp_path / "out", {"train": 3})
    listed = summary.files["train"]["cat"]
    assert len(set(listed)) == len(listed) == summary.counts["train"]["cat"] == 3
    assert all(p.is_file() for p in listed)


def test_a_clash_with_an_existing_file_writes_nothing(flat_source, tmp_path):
    dest = tmp_path / "busy"
    (dest / "train" / "dog").mkdir(parents=True)
    (dest / "train" / "dog" / "dog.1.jpg").write_bytes(b"mine")
    before = _digest_tree(dest)
    # The cats come first in the plan: before, they were written, then dog.1 failed.
    with pytest.raises(FileExistsError, match="nothing was written"):
        make_subsets(flat_source, dest, {"train": 2}, exist_ok=True)
    assert _digest_tree(dest) == before
    assert sorted(p.name for p in dest.rglob("*")) == ["dog", "dog.1.jpg", "train"]


def test_a_failed_write_removes_only_what_this_call_created(flat_source, tmp_path, monkeypatch):
    from keras_smalldata.data import subsets

    dest = tmp_path / "out"
    (dest / "train").mkdir(parents=True)
    (dest / "train" / "notes.txt").write_text("mine")
    real_copy, calls = subsets.atomic_copy, []

    def copy_then_fail(source, target):
        calls.append(target)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return real_copy(source, target)

    monkeypatch.setattr(subsets, "atomic_copy", copy_then_fail)
    with pytest.raises(OSError, match=r"No space left on device.*4 file\(s\) written by this call were removed"):
        make_subsets(flat_source, dest, {"train": 3, "test": 1}, exist_ok=True)
    # The user's file and folder stay; the class folders we made are gone.
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["train", "train/notes.txt"]


# --- names that would give a wrong class (issue 14 item 10 and siblings) ------


@pytest.mark.parametrize(
    "name", ["...1.png", "..1.png", ". 1.png", "._cat.1.jpg", " cat.1.jpg", "cat .1.jpg"]
)
def test_class_from_filename_never_gives_a_name_that_is_not_a_class_folder(name):
    assert class_from_filename(name) is None


def test_dots_only_name_is_reported_not_made_a_folder(tmp_path):
    source = tmp_path / "flat"
    write_picture(source / "cat.1.png")
    write_picture(source / "...1.png")
    write_picture(source / "dog_..1.png")
    # "...1.png" is a hidden file: left out, and said so.
    with pytest.warns(UserWarning, match=r"left out.*\.\.\.1\.png' \(hidden\)"):
        with pytest.raises(ValueError, match=r"Cannot read a class from 1 file name.*dog_\.\.1\.png"):
            make_subsets(source, tmp_path / "out", {"train": 1})
    assert not (tmp_path / "out").exists()
    (source / "dog_..1.png").unlink()
    with pytest.warns(UserWarning, match="hidden"):
        summary = make_subsets(source, tmp_path / "out", {"train": 1})
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["train"]
    assert summary.class_names == ["cat"]


@pytest.mark.parametrize(
    "label, problem",
    [("..", "starts with '.'"), ("a/b", "path separator"), ("", None), (" cat", "space"),
     (3, "not a string")],
)
def test_label_from_filename_must_give_a_class_folder_name(tmp_path, label, problem):
    source = tmp_path / "flat"
    write_picture(source / "x.1.png")
    with pytest.raises(ValueError) as info:
        make_subsets(source, tmp_path / "out", {"train": 1}, label_from_filename=lambda n: label)
    message = str(info.value)
    assert ("Cannot read a class" in message) if problem is None else (problem in message)
    assert not (tmp_path / "out").exists()


def test_classes_differing_only_in_case_are_refused(tmp_path):
    source = tmp_path / "flat"
    write_picture(source / "Cat.1.jpg")
    write_picture(source / "cat.2.jpg")
    with pytest.raises(ValueError, match=r"\['Cat', 'cat'\] differ only in upper/lower case"):
        make_subsets(source, tmp_path / "out", {"train": 1})
    with pytest.raises(ValueError, match=r"split names \['Train', 'train'\] differ only"):
        make_subsets(source, tmp_path / "out", {"Train": 1, "train": 1})


def test_files_differing_only_in_case_are_refused_before_writing(tmp_path):
    source = tmp_path / "folders"
    write_picture(source / "cat" / "X.jpg", seed=1)
    write_picture(source / "cat" / "x.jpg", seed=2)
    with pytest.raises(ValueError, match="case-insensitive disk.*nothing was written"):
        make_subsets(source, tmp_path / "out", {"train": 2})
    assert not (tmp_path / "out").exists()


def test_unicode_forms_of_one_name_are_one_class(tmp_path):
    source = tmp_path / "flat"
    write_picture(source / "caf\u00e9.1.jpg")  # NFC, as typed on Linux
    write_picture(source / "cafe\u0301.2.jpg")  # NFD, as macOS stores it
    summary = make_subsets(source, tmp_path / "out", {"train": 2})
    assert summary.counts == {"train": {"caf\u00e9": 2}}


def test_auto_layout_refuses_pictures_at_the_top_and_in_class_folders(folder_source, tmp_path):
    write_picture(folder_source / "IMG_0001.jpg")  # a stray picture used to make it "flat"
    with pytest.raises(ValueError, match="both at its top.*layout='flat'.*layout='folders'"):
        make_subsets(folder_source, tmp_path / "out", {"train": 2})
    summary = make_subsets(folder_source, tmp_path / "out", {"train": 2}, layout="folders")
    assert summary.class_names == ["ants", "bees"]


def test_a_source_of_split_folders_is_refused(tmp_path):
    # An archive that comes already split (chest_xray/train/NORMAL/...): with a
    # recursive read, "train" and "test" would be the classes.
    source = tmp_path / "chest_xray"
    for split in ("train", "test"):
        for label in ("NORMAL", "PNEUMONIA"):
            write_picture(source / split / label / "1.png")
    with pytest.raises(ValueError, match=r"\['test', 'train'\], which are splits.*source='.*train'"):
        make_subsets(source, tmp_path / "out", {"train": 1})
    summary = make_subsets(source / "train", tmp_path / "out", {"train": 1})
    assert summary.class_names == ["NORMAL", "PNEUMONIA"]
    # Classes that are merely named like splits, with their pictures in them, are fine.
    plain = tmp_path / "plain"
    for label in ("train", "test"):
        write_picture(plain / label / "1.png")
    assert make_subsets(plain, tmp_path / "out2", {"a": 1}).class_names == ["test", "train"]


def test_hidden_files_are_not_pictures(flat_source, tmp_path):
    # What a Mac leaves in an archive: AppleDouble files and __MACOSX.
    (flat_source / "._cat.1.jpg").write_bytes(b"\x00\x05\x16\x07")
    (flat_source / "__MACOSX").mkdir()
    (flat_source / "__MACOSX" / "._cat.2.jpg").write_bytes(b"\x00\x05\x16\x07")
    with pytest.warns(UserWarning, match=r"1 entries with a picture name are left out.*_cat\.1\.jpg' \(hidden\)"):
        summary = make_subsets(flat_source, tmp_path / "out", {"train": 12})
    assert summary.class_names == ["cat", "dog"]
    assert summary.total() == 24


def test_a_class_folder_without_pictures_is_refused(folder_source, tmp_path):
    (folder_source / "wasps").mkdir()
    (folder_source / "wasps" / "w.webp").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"\['wasps'\] .* hold no pictures.*classes=\['ants', 'bees'\]"):
        make_subsets(folder_source, tmp_path / "out", {"train": 2})
    summary = make_subsets(folder_source, tmp_path / "out", {"train": 2}, classes=["ants", "bees"])
    assert summary.total() == 4


def test_broken_links_and_pipes_are_left_out_with_a_warning(folder_source, tmp_path):
    (folder_source / "ants" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(folder_source / "bees" / "pipe.png")  # reading it would block forever
    with pytest.warns(UserWarning, match="2 entries with a picture name are left out.*(named pipe|does not exist)"):
        summary = make_subsets(folder_source, tmp_path / "out", {"train": 0.5, "test": 0.5})
    assert summary.total() == 17  # the 10 + 7 real pictures, each once


def test_an_unreadable_picture_stops_before_anything_is_written(flat_source, tmp_path, monkeypatch):
    real_access = os.access
    locked = flat_source / "dog.1.jpg"
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(PermissionError, match="dog.1.jpg.*Nothing was written"):
        make_subsets(flat_source, tmp_path / "out", {"train": 2})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"classes": "cat"}, TypeError, "`classes` must be a list of class names"),
        ({"classes": ["cat", "cat"]}, ValueError, r"names \['cat'\] more than once"),
        ({"seed": -1}, ValueError, "Received: seed=-1"),
        ({"seed": 1.5}, TypeError, "Received: seed=1.5"),
        ({"layout": "flta"}, ValueError, "Did you mean 'flat'"),
        ({"exist_ok": "yes"}, TypeError, "`exist_ok` must be True or False"),
        ({"label_from_filename": "cat"}, TypeError, "must be a function"),
    ],
)
def test_more_bad_arguments(flat_source, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        make_subsets(flat_source, tmp_path / "out", {"train": 1}, **kwargs)
    assert not (tmp_path / "out").exists()


# --- properties: names with dots, spaces and unicode --------------------------

labels = st.text(
    alphabet=st.characters(
        whitelist_categories=("Lu", "Ll", "Lo", "Nd", "Zs", "Pd"), whitelist_characters="._",
        blacklist_characters="\x00/\\",
    ),
    min_size=1,
    max_size=10,
).filter(lambda s: folder_name_problem(s) is None)


@settings(max_examples=60, deadline=None)
@given(label=labels, number=st.integers(0, 10**6), sep=st.sampled_from("._- "),
       ext=st.sampled_from([".jpg", ".JPEG", ".png", ".bmp", ".gif"]))
def test_class_from_filename_reads_back_the_class(label, number, sep, ext):
    assert class_from_filename(f"{label}{sep}{number}{ext}") == unicodedata.normalize("NFC", label)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=20))
def test_class_from_filename_gives_none_or_a_usable_folder_name(name):
    label = class_from_filename(name)
    assert label is None or folder_name_problem(label) is None


@settings(max_examples=15, deadline=None)
@given(
    names=st.lists(
        st.tuples(st.sampled_from(["cat", "dog"]), labels, st.sampled_from([".jpg", ".png"])),
        min_size=1, max_size=8, unique_by=lambda t: (t[0], unicodedata.normalize("NFC", t[1]).casefold()),
    ),
    flat=st.booleans(),
)
def test_every_picture_lands_once_in_its_class(names, flat):
    """Any names with dots, spaces, unicode: each file is copied once, to its class, byte for byte."""
    with tempfile.TemporaryDirectory() as folder:
        source, dest = Path(folder) / "src", Path(folder) / "dst"
        expected = {}
        for index, (label, name, ext) in enumerate(names):
            path = source / f"{label}.{index}.{name}{ext}" if flat else source / label / f"{name}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{index}".encode())
            expected[path.read_bytes()] = label
        summary = make_subsets(source, dest, {"all": 1.0}, layout="flat" if flat else "folders",
                               label_from_filename=(lambda n: n.split(".")[0]) if flat else None)
        written = [p for p in dest.rglob("*") if p.is_file()]
        assert len(written) == len(expected) == summary.total()
        for path in written:
            assert path.relative_to(dest).parts[:2] == ("all", expected[path.read_bytes()])
