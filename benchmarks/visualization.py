"""Benchmark: batched filter patterns and batched Grad-CAM against one-at-a-time loops.

Run: python benchmarks/visualization.py [--quick]

1. Filter patterns of 64 filters of one layer: `filter_patterns(model, layer,
   range(64))` (all filters in one batch) against a loop of 64
   `filter_pattern(model, layer, i)` calls (the Keras example's way), same
   steps and picture size.
   and against the Keras example's loop (a `tf.function` step that takes the
   filter index as a Python int, so it is traced again for every filter).
2. Grad-CAM of 32 pictures: one `grad_cam(model, images)` call against 32
   calls on one picture each, and against the same batched call run eagerly.

Models use random weights (no download). The variants of one comparison run
interleaved, ``--rounds`` times (2; 1 with ``--quick``), and the best time of
each is kept; tracing (a one-time cost per model, layer and batch shape) is
done and timed before. Ratios are baseline time / batched time.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_smalldata.viz import filter_pattern, filter_patterns, grad_cam  # noqa: E402


def seeds_convnet(size: int) -> keras.Model:
    """The seeds' from-scratch dogs-vs-cats convnet (Keras 3, rescaling inside)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64, 128, 128):
        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="seeds_convnet")


def vgg16_classifier(size: int) -> keras.Model:
    """VGG16 (weights=None) nested in a user's model with a 3-class softmax head."""
    base = keras.applications.VGG16(
        weights=None, include_top=False, input_shape=(size, size, 3)
    )
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="vgg16_classifier")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def keras_example_loop(feature_extractor, filters, size, steps, step_size=10.0):
    """The Keras example's way ("Visualizing what convnets learn"), one filter at a time.

    A `tf.function` step taking the filter index as a Python int, so it is
    traced again for every filter; inputs in [-1, 1] with a grey + noise start.
    """
    import tensorflow as tf

    @tf.function
    def step(image, filter_index, learning_rate):
        with tf.GradientTape() as tape:
            tape.watch(image)
            activation = feature_extractor(image)
            loss = tf.reduce_mean(activation[:, 2:-2, 2:-2, filter_index])
        grads = tf.math.l2_normalize(tape.gradient(loss, image))
        return image + learning_rate * grads

    results = []
    for filter_index in filters:
        image = (tf.random.uniform((1, size, size, 3)) - 0.5) * 0.25
        for _ in range(steps):
            image = step(image, filter_index, step_size)
        results.append(image.numpy())
    return results


def best_of(rounds, variants):
    """Runs the variants interleaved ``rounds`` times; returns each one's best time."""
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], timed(fn))
    return best


def bench_filter_patterns(name, model, layer, extractor, size, count, steps, rounds):
    filters = range(count)
    # Tracing happens once per model, layer and batch shape: time it apart.
    trace = timed(lambda: filter_patterns(model, layer, filters, steps=1, verbose=0))
    filter_patterns(model, layer, filters, steps=1, verbose=0, batch_size=count)
    filter_pattern(model, layer, 0, steps=1)
    t = best_of(
        rounds,
        {
            "default": lambda: filter_patterns(
                model, layer, filters, steps=steps, seed=0, verbose=0
            ),
            "one_batch": lambda: filter_patterns(
                model, layer, filters, steps=steps, seed=0, verbose=0, batch_size=count
            ),
            "loop": lambda: [
                filter_pattern(model, layer, i, steps=steps, seed=0) for i in filters
            ],
            "example": lambda: keras_example_loop(extractor, filters, size, steps),
        },
    )
    batched = t["default"]
    print(
        f"filter patterns | {name} | {count} filters x {steps} steps\n"
        f"    filter_patterns (default batch size) {batched:7.2f} s  "
        f"(+{trace:.2f} s tracing on a first call)\n"
        f"    filter_patterns (one batch of {count:3d})   {t['one_batch']:7.2f} s  "
        f"-> x{t['one_batch'] / batched:.2f} the default's time\n"
        f"    loop of filter_pattern               {t['loop']:7.2f} s  "
        f"-> default batched is x{t['loop'] / batched:.1f} faster\n"
        f"    loop as in the Keras example         {t['example']:7.2f} s  "
        f"-> default batched is x{t['example'] / batched:.1f} faster",
        flush=True,
    )


def bench_grad_cam(name, model, size, count, rounds):
    images = (
        np.random.default_rng(0)
        .uniform(0, 255, (count, size, size, 3))
        .astype("float32")
    )
    trace = timed(lambda: grad_cam(model, images))
    grad_cam(model, images[0])
    t = best_of(
        rounds,
        {
            "batched": lambda: grad_cam(model, images),
            "single": lambda: [grad_cam(model, images[i]) for i in range(count)],
            "eager": lambda: grad_cam(model, images, run_eagerly=True),
        },
    )
    batched = t["batched"]
    print(
        f"grad-cam        | {name} | {count} pictures\n"
        f"    one batched call                     {batched:7.2f} s  "
        f"(+{trace - batched:.2f} s tracing on a first call)\n"
        f"    {count} single-picture calls            {t['single']:7.2f} s  "
        f"-> batched is x{t['single'] / batched:.1f} faster\n"
        f"    one batched call, eager              {t['eager']:7.2f} s  "
        f"-> compiled is x{t['eager'] / batched:.1f} faster",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer filters/steps, one round (about a minute)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per comparison (best kept)",
    )
    args = parser.parse_args(argv)
    count, steps = (16, 10) if args.quick else (64, 30)
    rounds = args.rounds or (1 if args.quick else 2)
    keras.utils.set_random_seed(0)
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    small = seeds_convnet(64)
    small_extractor = keras.Model(small.input, small.get_layer("conv2d_1").output)
    vgg_size = 32
    vgg = vgg16_classifier(vgg_size)
    base = vgg.get_layer("vgg16")
    bench_filter_patterns(
        "seeds' convnet 64 px, conv2d_1",
        small,
        "conv2d_1",
        small_extractor,
        64,
        count,
        steps,
        rounds,
    )
    bench_filter_patterns(
        f"VGG16 {vgg_size} px nested, vgg16/block3_conv1",
        vgg,
        "vgg16/block3_conv1",
        keras.Model(base.input, base.get_layer("block3_conv1").output),
        vgg_size,
        count,
        steps,
        rounds,
    )
    cams = 8 if args.quick else 32
    bench_grad_cam("seeds' convnet 64 px, sigmoid", small, 64, cams, rounds)
    bench_grad_cam(f"VGG16 {vgg_size} px nested, softmax", vgg, vgg_size, cams, rounds)


if __name__ == "__main__":
    main()
