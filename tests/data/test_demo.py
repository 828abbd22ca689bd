import os

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from keras_smalldata.data import demo_dataset


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo_dataset("faces", tmp_path_factory.mktemp("demo") / "faces", image_size=32)


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
    assert demo_dataset(directory=demo_root, image_size=32) == demo_root
    assert some_file.stat().st_mtime_ns == stamp
    content = some_file.read_bytes()
    some_file.unlink()
    demo_dataset(directory=demo_root, image_size=32)
    assert some_file.read_bytes() == content


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="does not hold this demo dataset"):
        demo_dataset(directory=tmp_path / "mine", image_size=32)
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
        demo_dataset(directory=tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_the_dataset_folder_and_files_have_the_usual_modes(demo_root):
    umask = os.umask(0)
    os.umask(umask)
    # Not the private 0700 of mkdtemp / 0600 of mkstemp: what mkdir and open give.
    assert demo_root.stat().st_mode & 0o777 == 0o777 & ~umask
    picture = next((demo_root / "train" / "faces").glob("*.png"))
    assert picture.stat().st_mode & 0o777 == 0o666 & ~umask


def test_image_size_as_keras_takes_it_and_a_file_in_the_way(tmp_path):
    root = demo_dataset(directory=tmp_path / "pair", image_size=(16, 16), splits=(2, 1, 1))
    assert len(list(root.rglob("*.png"))) == 8
    assert Image.open(next(root.rglob("*.png"))).size == (16, 16)
    with pytest.raises(ValueError, match="The demo pictures are square"):
        demo_dataset(directory=tmp_path / "x", image_size=(16, 32))
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        demo_dataset(directory=tmp_path / "file", image_size=16)
    assert (tmp_path / "file").read_text() == "mine"


# --- the hard task: Fashion-MNIST's upper-body classes -------------------------------

FASHION_SCRIPT = r"""
import json, sys
import numpy as np
from PIL import Image
from keras_smalldata.data import demo_dataset

root = demo_dataset("fashion_tops", sys.argv[1], splits=(3, 2, 4), seed=5)
again = demo_dataset("fashion_tops", sys.argv[1], splits=(3, 2, 4), seed=5)
found = {}
for path in sorted(root.rglob("*.png")):
    split, name = path.parent.parent.name, path.parent.name
    pixels = np.asarray(Image.open(path))
    found.setdefault(split, {}).setdefault(name, []).append(
        [Image.open(path).mode, int(pixels[0, 0]), int(pixels[1, 0]), list(pixels.shape)])
print(json.dumps({"same": str(root) == str(again), "found": found}))
"""


def _fake_fashion_mnist(keras_home):
    from tests.conftest import write_fake_fashion_mnist

    write_fake_fashion_mnist(keras_home)


def _run_with_keras_home(keras_home, *arguments):
    import json
    import subprocess
    import sys

    environment = dict(os.environ, KERAS_HOME=str(keras_home))
    finished = subprocess.run(
        [sys.executable, "-c", FASHION_SCRIPT, *arguments],
        capture_output=True, text=True, env=environment, timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_fashion_tops_comes_from_keras_cache_with_the_test_split_apart(tmp_path):
    keras_home = tmp_path / "keras_home"
    _fake_fashion_mnist(keras_home)
    result = _run_with_keras_home(keras_home, str(tmp_path / "tops"))
    assert result["same"]
    found = result["found"]
    labels = {"t_shirt_top": 0, "pullover": 2, "coat": 4, "shirt": 6}
    for split, per_class in (("train", 3), ("validation", 2), ("test", 4)):
        assert sorted(found[split]) == sorted(labels)
        for name, label in labels.items():
            rows = found[split][name]
            assert len(rows) == per_class
            # grey 28x28 files of the right Fashion-MNIST class
            assert all(row[0] == "L" and row[3] == [28, 28] for row in rows)
            assert {row[1] for row in rows} == {label}
    for name in labels:
        train = {row[2] for row in found["train"][name]}
        validation = {row[2] for row in found["validation"][name]}
        test = {row[2] for row in found["test"][name]}
        assert not train & validation  # disjoint, both from the training split
        assert max(train | validation) < 100
        assert test == {100, 101, 102, 103}  # the test split's first pictures


def test_fashion_tops_offline_says_what_to_do(tmp_path, monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://...: None -- [Errno -3]")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(RuntimeError, match="fashion-mnist.*could not be loaded.*copy the four"):
        demo_dataset("fashion_tops", tmp_path / "tops")
    assert not (tmp_path / "tops").exists()


@pytest.mark.parametrize(
    "task, kwargs, message",
    [("fashion", {}, "Did you mean 'fashion_tops'"),
     ("fashion_tops", {"splits": (6000, 1, 10)}, "at most 6000 training plus validation"),
     ("fashion_tops", {"splits": (10, 10, 1001)}, "1000 test pictures"),
     ("faces", {"splits": (60, 30, 20)}, "at most 100")],
)
def test_bad_task_and_splits(tmp_path, task, kwargs, message):
    with pytest.raises(ValueError, match=message):
        demo_dataset(task, tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_a_path_given_as_the_task_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(ValueError, match="pass directory="):
        demo_dataset(str(tmp_path / "faces"))


def test_default_folders_differ_by_settings(tmp_path, monkeypatch):
    from keras_smalldata.data.demo import default_demo_dir

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert default_demo_dir("faces", 64) == tmp_path / "datasets" / "smalldata_faces_64px"
    assert default_demo_dir("fashion_tops", 28, (25, 50, 250), seed=3).name == (
        "smalldata_fashion_tops_28px_25-50-250_seed3"
    )
