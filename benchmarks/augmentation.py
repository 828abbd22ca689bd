"""Benchmark: ImageDataGenerator-style augmentation on the CPU, pictures per second.

The classic settings (rotation 40 degrees, shifts 0.2, shear 0.2 degrees, zoom
0.2 with x and y drawn apart, horizontal flips, fill_mode="nearest", bilinear)
on 150x150x3 pictures in batches of 32, measured in one run; every figure is the
best of several interleaved rounds (the least disturbed by other processes on a
shared machine), and the ratios compare figures of the same run.

1. The augmentation alone, on decoded float32 batches: the legacy
   ``ImageDataGenerator.flow``, the Keras 3 chain (RandomRotation,
   RandomTranslation, RandomShear, RandomZoom, RandomFlip), one bare
   ``keras.ops.image.affine_transform`` pass (the old layer's floor),
   albumentations (``Affine`` + ``HorizontalFlip``, OpenCV ``warpAffine``, one
   picture at a time from Python) and the fused ``RandomAffine``; then the
   options issue 18 lists for the resampling pass: the library's
   keras.ops-level warp without XLA, the fused layer fed uint8 pictures, and
   OpenCV ``warpAffine`` through ``tf.numpy_function``.
2. The pipeline a user writes, ``image_dataset_from_directory(...)`` then
   ``.map(augment, num_parallel_calls=AUTOTUNE)``: from pictures already in
   memory (``.cache()``), from 150x150 JPEG files, and from 375x500 JPEG files
   (decoded and resized to 150x150 by the loader); the legacy generator reads
   the same files with ``flow_from_directory``.
3. The loader's resize: its share of the loader's time, the most that fusing
   it into the warp could save.
4. Quality: the mean absolute error per pixel of each resampling against an
   exact float64 warp (``tests/augment/_helpers.reference_warp``) with the
   same matrices.

Part 1 runs with the Keras backend of ``KERAS_BACKEND`` (TensorFlow by
default; the ``tf.function`` rows are TensorFlow's); parts 2 to 4 run in
``tf.data``, which is TensorFlow on every backend.

Run: ``python benchmarks/augmentation.py`` (about 5 minutes on 2 CPU cores),
``--quick`` for a shorter, noisier run. Needs the ``bench`` extra
(albumentations, OpenCV) and tf-keras (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from keras_smalldata.augment import RandomAffine, affine_matrix  # noqa: E402
from keras_smalldata.augment._warp import warp  # noqa: E402
from keras_smalldata.augment.pipelines import SEEDS_IMAGE_DATA_GENERATOR  # noqa: E402
from tests.augment._helpers import reference_warp  # noqa: E402

SIZE = 150
BATCH = 32
SETTINGS = SEEDS_IMAGE_DATA_GENERATOR
BACKEND = keras.backend.backend()
AUTOTUNE = tf.data.AUTOTUNE


# The methods -----------------------------------------------------------------


def keras_chain(seed=0):
    """Keras 3's own layers doing the ImageDataGenerator job, one resampling each."""
    layers = keras.layers
    return layers.Pipeline(
        [
            layers.RandomRotation(40 / 360, fill_mode="nearest", seed=seed),
            layers.RandomTranslation(0.2, 0.2, fill_mode="nearest", seed=seed + 1),
            # 0.2 degrees of shear is tan(0.2 deg) ~ 0.0035 of the picture.
            layers.RandomShear(x_factor=0.0035, fill_mode="nearest", seed=seed + 2),
            layers.RandomZoom(0.2, 0.2, fill_mode="nearest", seed=seed + 3),
            layers.RandomFlip("horizontal", seed=seed + 4),
        ]
    )


def albumentations_augment():
    """albumentations' equivalent: one Affine (OpenCV warpAffine) and a flip."""
    import albumentations as A

    return A.Compose(
        [
            A.Affine(
                rotate=(-40, 40),
                translate_percent={"x": (-0.2, 0.2), "y": (-0.2, 0.2)},
                scale={"x": (0.8, 1.2), "y": (0.8, 1.2)},
                shear=(-0.2, 0.2),
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_REPLICATE,
                p=1.0,
            ),
            A.HorizontalFlip(p=0.5),
        ]
    )


def albumentations_batch(augment):
    """A NumPy function of a float32 batch, as tf.numpy_function calls it.

    The pictures go through uint8, albumentations' fastest input (2,119 against
    1,863 pictures/s for float32 when this benchmark was written).
    """

    def run(batch):
        pictures = np.clip(np.rint(batch), 0, 255).astype("uint8")
        return np.stack([augment(image=p)["image"] for p in pictures]).astype("float32")

    return run


def opencv_warp(pictures, matrices, interpolation=cv2.INTER_LINEAR):
    """OpenCV's warpAffine with the layer's own matrices (output -> input)."""
    flags = interpolation | cv2.WARP_INVERSE_MAP
    out = np.empty_like(pictures)
    for i, (picture, row) in enumerate(zip(pictures, matrices)):
        matrix = np.asarray(row[:6], "float64").reshape(2, 3)
        out[i] = cv2.warpAffine(
            picture, matrix, picture.shape[1::-1], flags=flags,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
    return out


def opencv_augment(layer):
    """The layer's draws and matrices, resampled by OpenCV through tf.numpy_function."""

    def run(images):
        matrices = layer.get_random_transformation(images)["matrix"]
        out = tf.numpy_function(opencv_warp, [images, matrices], tf.float32)
        return tf.ensure_shape(out, images.shape)

    return run


def library_warp_without_xla(layer):
    """The library's keras.ops-level warp in a plain tf.function (no XLA)."""

    @tf.function(reduce_retracing=True)
    def run(images):
        matrices = layer.get_random_transformation(images)["matrix"]
        return warp(keras.ops, images, matrices, fill_mode="nearest")

    return run


def random_matrices(count, seed=0):
    """Matrices of the classic settings (flips included), for the bare passes."""
    rng = np.random.default_rng(seed)
    return keras.ops.convert_to_numpy(
        affine_matrix(
            SIZE, SIZE,
            rotation=rng.uniform(-40, 40, count),
            shift_x=rng.uniform(-30, 30, count),
            shift_y=rng.uniform(-30, 30, count),
            shear=rng.uniform(-0.2, 0.2, count),
            zoom_x=rng.uniform(0.8, 1.2, count),
            zoom_y=rng.uniform(0.8, 1.2, count),
            horizontal_flip=rng.uniform(size=count) < 0.5,
        )  # fmt: skip
    )


# Timing -------------------------------------------------------------------


def best_rates(runners, rounds, work):
    """Best pictures/second of each runner over interleaved rounds, and its CPU cost.

    ``runners`` maps a name to a callable that does one unit of work and
    returns the number of pictures it made; ``work`` calls per round. Returns
    ``{name: (pictures per second, CPU milliseconds per picture)}``: the best
    wall-clock rate, and the CPU time (all threads of this process) per
    picture in the cheapest round, which other processes on the machine
    disturb less than the wall clock.
    """
    best = {name: (0.0, float("inf")) for name in runners}
    for run in runners.values():  # warm-up: tracing, compiling, first allocations
        run()
    for _ in range(rounds):
        for name, run in runners.items():
            start, cpu = time.perf_counter(), time.process_time()
            count = sum(run() for _ in range(work))
            rate = count / (time.perf_counter() - start)
            cost = 1000 * (time.process_time() - cpu) / count
            best[name] = (max(best[name][0], rate), min(best[name][1], cost))
    return best


def materialize(x):
    return keras.ops.convert_to_numpy(x).shape[0]


def epoch(dataset):
    """Iterates a dataset once; returns the number of pictures."""
    count = 0
    for element in dataset:
        images = element[0] if isinstance(element, tuple) else element
        count += int(images.shape[0])
    return count


# Part 1: the augmentation alone ------------------------------------------------


def augmentation_alone(pictures, rounds, batches):
    from tf_keras.preprocessing.image import ImageDataGenerator

    batch = pictures[:BATCH]
    backend_batch = keras.ops.convert_to_tensor(batch)
    legacy = ImageDataGenerator(**SETTINGS).flow(
        pictures, batch_size=BATCH, shuffle=False, seed=0
    )
    chain = keras_chain()
    fused = RandomAffine(**SETTINGS, seed=0)
    fused_uint8 = RandomAffine(**SETTINGS, seed=0)
    uint8_batch = keras.ops.convert_to_tensor(batch.astype("uint8"))
    # PyTorch's kernel swaps entries of this matrix in place: it only times it.
    matrix = keras.ops.convert_to_tensor(random_matrices(BATCH))
    albumentations = albumentations_batch(albumentations_augment())

    def bare(x):
        return keras.ops.image.affine_transform(x, matrix, fill_mode="nearest")

    runners = {
        "legacy ImageDataGenerator.flow": lambda: len(next(legacy)),
        "albumentations (Python loop)": lambda: albumentations(batch).shape[0],
        "keras chain (eager)": lambda: materialize(chain(backend_batch, training=True)),
        "bare affine_transform (eager)": lambda: materialize(bare(backend_batch)),
        "fused RandomAffine (eager)": lambda: materialize(
            fused(backend_batch, training=True)
        ),
        "fused RandomAffine, uint8 input (eager)": lambda: materialize(
            fused_uint8(uint8_batch, training=True)
        ),
    }
    if BACKEND == "tensorflow":
        chain_graph = tf.function(lambda x: chain(x, training=True))
        fused_graph = tf.function(lambda x: fused(x, training=True))
        bare_graph = tf.function(bare)
        no_xla = library_warp_without_xla(RandomAffine(**SETTINGS, seed=1))
        opencv = tf.function(opencv_augment(RandomAffine(**SETTINGS, seed=2)))
        runners.update(
            {
                "keras chain (tf.function)": lambda: materialize(chain_graph(backend_batch)),
                "bare affine_transform (tf.function)": lambda: materialize(
                    bare_graph(backend_batch)
                ),
                "fused RandomAffine (tf.function)": lambda: materialize(
                    fused_graph(backend_batch)
                ),
                "option: keras.ops warp, no XLA (tf.function)": lambda: materialize(
                    no_xla(backend_batch)
                ),
                "option: OpenCV warpAffine (tf.numpy_function)": lambda: materialize(
                    opencv(backend_batch)
                ),
            }
        )
    elif BACKEND == "jax":
        import jax

        bare_jit = jax.jit(bare)
        runners["bare affine_transform (jax.jit)"] = lambda: materialize(
            bare_jit(backend_batch)
        )

    if BACKEND == "torch":
        # keras.ops.image.affine_transform takes seconds per batch on PyTorch.
        batches = 1
    return best_rates(runners, rounds, batches)


# Part 2: the pipeline a user writes ------------------------------------------


def write_pictures(folder: Path, count: int, height: int, width: int, seed: int = 0):
    """JPEG files of smooth shapes with some noise, in two class folders."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype("float32")
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        fx, fy, phase = rng.uniform(0.01, 0.06, 3)
        planes = [
            127 + 110 * np.sin(fx * xx * (k + 1) + phase) * np.cos(fy * yy + k)
            for k in range(3)
        ]
        picture = np.stack(planes, -1) + rng.normal(0, 8, (height, width, 3))
        picture = np.clip(picture, 0, 255).astype("uint8")
        Image.fromarray(picture).save(folder / "ab"[i % 2] / f"{i:04d}.jpg", quality=90)


def loader(folder):
    return keras.utils.image_dataset_from_directory(
        folder, image_size=(SIZE, SIZE), batch_size=BATCH, shuffle=False, verbose=False
    )


def pipelines(folder, cached: bool):
    """{name: dataset} for the loader alone and each augmentation mapped on it."""
    base = loader(folder)
    if cached:
        base = base.cache()
        epoch(base)  # fill the cache
        # Four epochs at a time: long enough for AUTOTUNE to settle.
        base = base.repeat(4)
    fused = RandomAffine(**SETTINGS, seed=0)
    chain = keras_chain()
    albumentations = albumentations_batch(albumentations_augment())

    def albumentations_map(x, y):
        out = tf.numpy_function(albumentations, [x], tf.float32)
        return tf.ensure_shape(out, x.shape), y

    return {
        "loader alone": base,
        "+ albumentations (tf.numpy_function)": base.map(
            albumentations_map, num_parallel_calls=AUTOTUNE
        ),
        "+ keras chain": base.map(
            lambda x, y: (chain(x, training=True), y), num_parallel_calls=AUTOTUNE
        ),
        "+ fused RandomAffine": base.map(
            lambda x, y: (fused(x, training=True), y), num_parallel_calls=AUTOTUNE
        ),
    }


def legacy_pipeline(folder):
    from tf_keras.preprocessing.image import ImageDataGenerator

    flow = ImageDataGenerator(**SETTINGS).flow_from_directory(
        folder, target_size=(SIZE, SIZE), batch_size=BATCH, shuffle=False, seed=0
    )

    def one_epoch():
        return sum(next(flow)[0].shape[0] for _ in range(len(flow)))

    return one_epoch


def user_pipelines(folders, rounds):
    results = {}
    for label, folder, cached in folders:
        runners = {
            name: (lambda d=dataset: epoch(d))
            for name, dataset in pipelines(folder, cached).items()
        }
        if not cached:
            runners["legacy flow_from_directory"] = legacy_pipeline(folder)
        results[label] = best_rates(runners, rounds, 1)
    return results


# Part 3: the loader's resize ---------------------------------------------------


def resize_share(folder, rounds):
    """The loader's two steps apart: decoding the files, resizing the decoded pictures."""
    files = sorted(str(p) for p in Path(folder).rglob("*.jpg"))

    def decode(path):
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3)

    decoded = tf.data.Dataset.from_tensor_slices(files).map(
        decode, num_parallel_calls=AUTOTUNE
    )
    in_memory = decoded.cache()
    epoch_count = sum(1 for _ in in_memory)
    resized = in_memory.map(
        lambda x: tf.image.resize(x, (SIZE, SIZE)), num_parallel_calls=AUTOTUNE
    )

    def count(dataset):
        return lambda: sum(1 for _ in dataset)

    rates = best_rates(
        {"decode (files)": count(decoded), "resize (decoded pictures)": count(resized)},
        rounds,
        1,
    )
    assert epoch_count == len(files)
    return rates


# Part 4: quality --------------------------------------------------------------


def quality(pictures):
    """Each resampling of the same pictures by the same matrices, and the exact warp."""
    pictures = pictures[:8]
    matrices = random_matrices(len(pictures), seed=1)
    exact = np.stack(
        [reference_warp(p, m, "nearest") for p, m in zip(pictures, matrices)]
    )
    backend_pictures = keras.ops.convert_to_tensor(pictures)
    backend_matrices = keras.ops.convert_to_tensor(matrices)
    # Keras 3.15's PyTorch affine_transform swaps entries of its matrix tensor in
    # place, and a tensor made from a NumPy array shares that array's memory:
    # the kernel gets a copy of its own.
    kernel = keras.ops.image.affine_transform(
        backend_pictures, keras.ops.convert_to_tensor(matrices.copy()), fill_mode="nearest"
    )
    library = warp(keras.ops, backend_pictures, backend_matrices, fill_mode="nearest")
    uint8 = opencv_warp(pictures.astype("uint8"), matrices).astype("float32")
    return {
        "bare affine_transform (the old layer)": kernel,
        "fused RandomAffine (library warp)": library,
        "OpenCV warpAffine, float32": opencv_warp(pictures, matrices),
        "OpenCV warpAffine, uint8 (albumentations)": uint8,
        "SciPy order 1 (ImageDataGenerator)": np.stack(
            [scipy_warp(p, m) for p, m in zip(pictures, matrices)]
        ),
    }, exact


def scipy_warp(picture, row):
    """SciPy's ndimage.affine_transform (what ImageDataGenerator ran), same matrix row."""
    import scipy.ndimage

    matrix = np.asarray(row[:6], "float64").reshape(2, 3)
    # SciPy indexes (row, column): swap x and y.
    linear = np.array([[matrix[1, 1], matrix[1, 0]], [matrix[0, 1], matrix[0, 0]]])
    offset = np.array([matrix[1, 2], matrix[0, 2]])
    return np.stack(
        [
            scipy.ndimage.affine_transform(
                picture[..., c].astype("float64"), linear, offset, order=1,
                mode="nearest",
            )  # fmt: skip
            for c in range(picture.shape[-1])
        ],
        -1,
    )


# Report --------------------------------------------------------------------


def print_rates(title, rates):
    print(title)
    width = max(len(name) for name in rates)
    for name, (rate, cost) in rates.items():
        print(f"  {name:<{width}}  {rate:8.0f} img/s  {cost:7.3f} CPU ms/img")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 batches and 256 files instead of 5 rounds of 6 batches "
        "and 1,024 files (default: off)")
    options = parser.parse_args(argv)
    rounds, batches, files = (2, 3, 256) if options.quick else (5, 6, 1024)
    print(
        f"{datetime.date.today()} | {platform.machine()} {os.cpu_count()} CPU | Python "
        f"{platform.python_version()} | keras {keras.__version__} ({BACKEND}) | "
        f"tensorflow {tf.__version__} | opencv {cv2.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"150x150": Path(tmp) / "150", "375x500": Path(tmp) / "375"}
        write_pictures(folders["150x150"], files, SIZE, SIZE, seed=0)
        write_pictures(folders["375x500"], files // 2, 375, 500, seed=1)
        pictures = np.concatenate(
            [np.asarray(x) for x, _ in loader(folders["150x150"]).take(4)]
        )

        print(f"\n1. The augmentation alone: {SIZE}x{SIZE}x3 float32, batch {BATCH}, "
              f"best of {rounds} rounds x {batches} batches")  # fmt: skip
        alone = augmentation_alone(pictures, rounds, batches)
        print_rates("", alone)

        print(f"\n2. image_dataset_from_directory(...).map(..., AUTOTUNE): {files} "
              f"150x150 and {files // 2} 375x500 pictures, best of {rounds} epochs")  # fmt: skip
        piped = user_pipelines(
            [
                ("in memory (.cache(), 4 epochs)", folders["150x150"], True),
                ("150x150 JPEG files", folders["150x150"], False),
                ("375x500 JPEG files, resized to 150x150", folders["375x500"], False),
            ],
            rounds,
        )
        for label, rates in piped.items():
            print_rates(f" {label}:", rates)

        print("\n3. The loader's resize (375x500 JPEG files to 150x150):")
        shares = resize_share(folders["375x500"], rounds)
        print_rates("", shares)
        decode, resize = (shares[k][1] for k in shares)
        print(f"  the resize takes {resize / (decode + resize):.0%} of the loader's CPU time")

        print("\n4. Quality: mean absolute error per pixel (0-255) against an exact "
              "float64 warp, same matrices, 8 pictures")  # fmt: skip
        results, exact = quality(pictures)
        for name, out in results.items():
            error = np.abs(keras.ops.convert_to_numpy(out) - exact).mean()
            print(f"  {name:<42} {error:.5f}")

    print("\nratios: wall-clock throughput, and CPU time (targets in brackets)")

    def line(label, rates, a, b, target):
        (rate_a, cost_a), (rate_b, cost_b) = rates[a], rates[b]
        print(f"  {label:<52} {rate_a / rate_b:6.2f} {cost_b / cost_a:6.2f}  [{target}]")

    if BACKEND == "tensorflow":
        line("alone: fused / bare pass (tf.function)", alone,
             "fused RandomAffine (tf.function)", "bare affine_transform (tf.function)",
             ">= 0.8")  # fmt: skip
    bare = "bare affine_transform " + ("(jax.jit)" if BACKEND == "jax" else "(eager)")
    fused = "fused RandomAffine (eager)"
    line(f"alone: fused / {bare}", alone, fused, bare, ">= 0.8")
    line("alone: fused / albumentations", alone, fused, "albumentations (Python loop)", ">= 1.5")
    line("alone: fused / legacy", alone, fused, "legacy ImageDataGenerator.flow", ">= 5")
    for label, rates in piped.items():
        fused = "+ fused RandomAffine"
        line(f"{label}: fused / albumentations", rates, fused,
             "+ albumentations (tf.numpy_function)", ">= 1.5")  # fmt: skip
        if "legacy flow_from_directory" in rates:
            line(f"{label}: fused / legacy", rates, fused, "legacy flow_from_directory", ">= 5")
        line(f"{label}: fused / loader alone", rates, fused, "loader alone", "<= 1")
    return alone, piped


if __name__ == "__main__":
    main()
