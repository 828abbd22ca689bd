import os

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from keras_smalldata.data import demo_dataset


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo_dataset(tmp_path_factory.mktemp("demo") / "faces", image_size=32)


def test_layout_and_counts(demo_root):
    for split, n in zip(["train", "validation", "test"], [60, 20, 20]):
        for class_name in ["faces", "not_faces"]:
            files = sorted((demo_root / split / class_name).glob("*.png"))
            assert len(files) == n
    names = {p.name for p in demo_root.rglob("*.png")}
    assert len(names) == 200  # every source picture used exactly once


def test_loads_with_image_dataset_from_directory(demo_root):
    train = keras.utils.image_dataset_from_directory(
        demo_root / "train", image_size=(32, 32), batch_size=16, label_mode="binary"
    )
    assert train.class_names == ["faces", "not_faces"]
    images, labels = next(iter(train))
    assert images.shape[1:] == (32, 32, 3)
    total = sum(int(y.shape[0]) for _, y in train)
    assert total == 120
    assert float(np.mean(np.concatenate([y.numpy().ravel() for _, y in train]))) == 0.5


def test_pictures_are_the_real_lfw_subset(demo_root):
    """A written face, shrunk back to 25x25, is close to the scikit-image original."""
    source = skimage_data.lfw_subset()
    path = next((demo_root / "test" / "not_faces").glob("*.png"))
    index = int(path.stem.split("_")[-1])
    written = np.asarray(Image.open(path).convert("L").resize((25, 25), Image.Resampling.BOX))
    original = source[100 + index] * 255
    assert np.mean(np.abs(written.astype(float) - original)) < 12
    rgb = np.asarray(Image.open(path))
    assert rgb.shape == (32, 32, 3)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_second_call_reuses_and_repairs(demo_root):
    some_file = next((demo_root / "train" / "faces").glob("*.png"))
    stamp = some_file.stat().st_mtime_ns
    assert demo_dataset(demo_root, image_size=32) == demo_root
    assert some_file.stat().st_mtime_ns == stamp
    content = some_file.read_bytes()
    some_file.unlink()
    demo_dataset(demo_root, image_size=32)
    assert some_file.read_bytes() == content


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="does not hold this demo dataset"):
        demo_dataset(tmp_path / "mine", image_size=32)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [({"image_size": 8}, ValueError, "image_size=8"),
     ({"splits": (60, 30, 20)}, ValueError, "at most 100"),
     ({"splits": (60, 0, 20)}, ValueError, "three positive ints"),
     ({"seed": -1}, ValueError, "seed=-1"),
     ({"image_size": "64"}, TypeError, "must be an int")],
)
def test_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        demo_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_the_dataset_folder_and_files_have_the_usual_modes(demo_root):
    umask = os.umask(0)
    os.umask(umask)
    # Not the private 0700 of mkdtemp / 0600 of mkstemp: what mkdir and open give.
    assert demo_root.stat().st_mode & 0o777 == 0o777 & ~umask
    picture = next((demo_root / "train" / "faces").glob("*.png"))
    assert picture.stat().st_mode & 0o777 == 0o666 & ~umask


def test_image_size_as_keras_takes_it_and_a_file_in_the_way(tmp_path):
    root = demo_dataset(tmp_path / "pair", image_size=(16, 16), splits=(2, 1, 1))
    assert len(list(root.rglob("*.png"))) == 8
    assert Image.open(next(root.rglob("*.png"))).size == (16, 16)
    with pytest.raises(ValueError, match="The demo pictures are square"):
        demo_dataset(tmp_path / "x", image_size=(16, 32))
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        demo_dataset(tmp_path / "file", image_size=16)
    assert (tmp_path / "file").read_text() == "mine"
