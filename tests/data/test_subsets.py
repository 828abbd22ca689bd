import hashlib
import os

import keras
import pytest

from keras_smalldata.data import make_subsets
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
    text = str(summary)
    assert "train" in text and "cat" in text and "24" in text


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
