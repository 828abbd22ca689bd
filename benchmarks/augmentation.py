"""Benchmark: ImageDataGenerator-style augmentation, pictures per second.

Compares, in one run, at 150x150x3 float32 pictures and batches of 32:

- legacy: `tf_keras.preprocessing.image.ImageDataGenerator(...).flow(x)`
  (NumPy/SciPy, one picture at a time),
- keras chain: Keras 3's RandomRotation, RandomTranslation, RandomShear,
  RandomZoom and RandomFlip in a `keras.layers.Pipeline` (4 interpolations),
- bare pass: ONE `keras.ops.image.affine_transform` call with ready-made
  matrices (the floor: no random draws, no matrix building),
- fused: `keras_smalldata.augment.RandomAffine` (draws + matrices + one pass),

all with the classic settings (rotation 40 degrees, shifts 0.2, shear 0.2
degrees, zoom 0.2, horizontal flips, fill_mode="nearest"). The Keras paths are
timed both eagerly (calling the layer on a batch) and compiled
(`tf.function`, which is how `dataset.map(layer)` runs them). Each figure is
the best of several interleaved rounds (the least disturbed by other
processes on a shared machine).

Run: ``python benchmarks/augmentation.py`` (about 2-3 minutes on 2 CPU
cores), or ``--quick`` for a shorter, noisier run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_smalldata.augment import RandomAffine, affine_matrix  # noqa: E402
from keras_smalldata.augment.pipelines import SEEDS_IMAGE_DATA_GENERATOR  # noqa: E402

SIZE = 150
BATCH = 32
SETTINGS = SEEDS_IMAGE_DATA_GENERATOR


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


def make_runners(images):
    """Returns {name: callable() -> one augmented batch}."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    batch = tf.constant(images[:BATCH])
    legacy_iterator = ImageDataGenerator(**SETTINGS).flow(
        images, batch_size=BATCH, shuffle=False, seed=0
    )
    chain = keras_chain()
    fused = RandomAffine(**SETTINGS, seed=0)
    rng = np.random.default_rng(0)
    matrix = affine_matrix(
        SIZE,
        SIZE,
        rotation=rng.uniform(-40, 40, BATCH),
        shift_x=rng.uniform(-30, 30, BATCH),
        shift_y=rng.uniform(-30, 30, BATCH),
        zoom_x=rng.uniform(0.8, 1.2, BATCH),
        zoom_y=rng.uniform(0.8, 1.2, BATCH),
    )

    def bare(x):
        return keras.ops.image.affine_transform(x, matrix, fill_mode="nearest")

    chain_graph = tf.function(lambda x: chain(x, training=True))
    fused_graph = tf.function(lambda x: fused(x, training=True))
    bare_graph = tf.function(bare)
    return {
        "legacy ImageDataGenerator.flow": lambda: next(legacy_iterator),
        "keras chain (eager)": lambda: chain(batch, training=True),
        "keras chain (tf.function)": lambda: chain_graph(batch),
        "bare affine_transform (eager)": lambda: bare(batch),
        "bare affine_transform (tf.function)": lambda: bare_graph(batch),
        "fused RandomAffine (eager)": lambda: fused(batch, training=True),
        "fused RandomAffine (tf.function)": lambda: fused_graph(batch),
    }


def measure(runners, rounds, batches):
    """Best pictures/second of each runner over interleaved rounds."""
    best = dict.fromkeys(runners, 0.0)
    for run in runners.values():  # warm-up (tracing, first allocations)
        keras.ops.convert_to_numpy(run())
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(batches):
                out = run()
            keras.ops.convert_to_numpy(out)  # wait for the last result
            rate = batches * BATCH / (time.perf_counter() - start)
            best[name] = max(best[name], rate)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and batches")
    options = parser.parse_args(argv)
    rounds, batches = (2, 3) if options.quick else (5, 8)
    images = np.random.default_rng(0).uniform(0, 255, (BATCH * 4, SIZE, SIZE, 3))
    images = images.astype("float32")
    runners = make_runners(images)
    print(
        f"{datetime.date.today()} | {platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} CPU | Python {platform.python_version()} | keras "
        f"{keras.__version__} | tensorflow {tf.__version__}"
    )
    print(
        f"{SIZE}x{SIZE}x3 float32, batch {BATCH}, best of {rounds} rounds x {batches} batches"
    )
    rates = measure(runners, rounds, batches)
    width = max(len(name) for name in rates)
    for name, rate in rates.items():
        print(f"  {name:<{width}}  {rate:8.0f} img/s")

    def ratio(a, b):
        return rates[a] / rates[b]

    print("ratios (targets in brackets):")
    for mode in ("eager", "tf.function"):
        fused, bare = f"fused RandomAffine ({mode})", f"bare affine_transform ({mode})"
        chain = f"keras chain ({mode})"
        print(f"  {mode}:")
        print(f"    fused / bare pass    {ratio(fused, bare):5.2f}  [>= 0.80]")
        print(f"    fused / keras chain  {ratio(fused, chain):5.2f}  [>= 3]")
        print(
            f"    fused / legacy       {ratio(fused, 'legacy ImageDataGenerator.flow'):5.2f}  [>= 5]"
        )
    return rates


if __name__ == "__main__":
    main()
