"""Benchmark: visualisation speed on each backend, and how many filters the ascent excites.

Run: python benchmarks/visualization.py [--quick]
     [--part speed|tf-keras-vis|excitation|all] [--backends tensorflow,jax,torch]

Part "speed", under each backend of ``--backends`` (each in its own process,
one after the other; default: the backend of KERAS_BACKEND, else TensorFlow):

1. Filter patterns of 64 filters of one layer: `filter_patterns(model, layer,
   range(64))` (batches of 8 on a CPU), the same with all filters in one
   batch, and a loop of 64 `filter_pattern(model, layer, i)` calls; on
   TensorFlow also the Keras example's loop (a `tf.function` step that takes
   the filter index as a Python int, so it is traced again for every filter).
2. Grad-CAM of 32 pictures: one `class_activation_maps(model, images)` call against 32
   calls on one picture each, and against the same batched call run eagerly.

Models use random weights (no download). The variants of one comparison run
interleaved, ``--rounds`` times (2; 1 with ``--quick``), and the best time of
each is kept; compiling (a one-time cost per model, layer and batch shape) is
done and timed before. Within a backend, ratios are baseline time / batched
time; with several backends, a last table gives each backend's time divided
by TensorFlow's, measured in the same run.

Part "tf-keras-vis" (TensorFlow backend, ImageNet MobileNetV2 classifier from
the Keras cache and tf-keras-vis installed; skipped without them): batched
Grad-CAM of 32 real photographs (scikit-image's bundled samples at 224 px, each
whole, mirrored, cropped and cropped-mirrored) explaining each picture's
predicted class at ``out_relu``, by ``class_activation_maps(model, images, class_index=...,
layer="out_relu")`` and by tf-keras-vis' ``Gradcam`` (``ReplaceToLinear``,
``CategoricalScore``, ``penultimate_layer="out_relu"``), each with its
defaults otherwise (maps upsampled to the pictures and normalised). Both are
called once before timing (our first call compiles), then run interleaved
``--rounds`` times; the best time of each is kept and the ratio printed, with
how far the two sets of maps agree.

Part "excitation" (ImageNet MobileNetV2 from the Keras cache; skipped without
it): for many layers, the fraction of filters whose activation the ascent
raises (`FilterPatterns.excited`), with the Keras example's algorithm
(``objective="activation", restarts=0``) and with the default
(``objective="pre_activation", restarts=2``), and how many filters are
unresponsive (their value hardly changes whatever the picture: no ascent can
excite those).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_smalldata import import_keras_quietly  # noqa: E402

keras = import_keras_quietly()
import numpy as np  # noqa: E402

from keras_smalldata.viz import (  # noqa: E402
    class_activation_maps,
    filter_pattern,
    filter_patterns,
    get_activations,
)

BACKENDS = ("tensorflow", "jax", "torch")


def grad_cam(model, images, **kwargs):
    """The Grad-CAM heatmaps alone, as the timed calls compare them."""
    return class_activation_maps(model, images, **kwargs).heatmaps


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
    TensorFlow backend only.
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
    quiet = dict(verbose=0, restarts=0)  # the same work for every variant
    # Compiling happens once per model, layer and batch shape: time it apart.
    first = timed(lambda: filter_patterns(model, layer, filters, steps=1, **quiet))
    filter_patterns(model, layer, filters, steps=1, batch_size=count, **quiet)
    filter_pattern(model, layer, 0, steps=1, restarts=0)
    variants = {
        "default": lambda: filter_patterns(
            model, layer, filters, steps=steps, seed=0, **quiet
        ),
        "one_batch": lambda: filter_patterns(
            model, layer, filters, steps=steps, seed=0, batch_size=count, **quiet
        ),
        "loop": lambda: [
            filter_pattern(model, layer, i, steps=steps, seed=0, restarts=0)
            for i in filters
        ],
    }
    if keras.backend.backend() == "tensorflow":
        variants["example"] = lambda: keras_example_loop(
            extractor, filters, size, steps
        )
    t = best_of(rounds, variants)
    batched = t["default"]
    lines = [
        f"filter patterns | {name} | {count} filters x {steps} steps",
        f"    filter_patterns (default batch size) {batched:7.2f} s  "
        f"(a first call of 1 step, compiling included: {first:.2f} s)",
        f"    filter_patterns (one batch of {count:3d})   {t['one_batch']:7.2f} s  "
        f"-> x{t['one_batch'] / batched:.2f} the default's time",
        f"    loop of filter_pattern               {t['loop']:7.2f} s  "
        f"-> default batched is x{t['loop'] / batched:.1f} faster",
    ]
    if "example" in t:
        lines.append(
            f"    loop as in the Keras example         {t['example']:7.2f} s  "
            f"-> default batched is x{t['example'] / batched:.1f} faster"
        )
    print("\n".join(lines), flush=True)
    return {f"filter patterns, {name}, {key}": value for key, value in t.items()}


def bench_grad_cam(name, model, size, count, rounds):
    images = (
        np.random.default_rng(0)
        .uniform(0, 255, (count, size, size, 3))
        .astype("float32")
    )
    first = timed(lambda: grad_cam(model, images))
    grad_cam(model, images[0])
    grad_cam(model, images, run_eagerly=True)
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
        f"(+{first - batched:.2f} s compiling on a first call)\n"
        f"    {count} single-picture calls            {t['single']:7.2f} s  "
        f"-> batched is x{t['single'] / batched:.1f} faster\n"
        f"    one batched call, eager              {t['eager']:7.2f} s  "
        f"-> compiled is x{t['eager'] / batched:.1f} faster",
        flush=True,
    )
    return {f"grad-cam, {name}, {key}": value for key, value in t.items()}


def run_speed(quick: bool, rounds: int) -> dict:
    count, steps = (16, 10) if quick else (64, 30)
    keras.utils.set_random_seed(0)
    small = seeds_convnet(64)
    small_extractor = keras.Model(small.input, small.get_layer("conv2d_1").output)
    vgg_size = 32
    vgg = vgg16_classifier(vgg_size)
    base = vgg.get_layer("vgg16")
    results = {}
    results.update(
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
    )
    results.update(
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
    )
    cams = 8 if quick else 32
    results.update(
        bench_grad_cam("seeds' convnet 64 px, sigmoid", small, 64, cams, rounds)
    )
    results.update(
        bench_grad_cam(
            f"VGG16 {vgg_size} px nested, softmax", vgg, vgg_size, cams, rounds
        )
    )
    return results


# ---------------------------------------------------------------------------
# Grad-CAM against tf-keras-vis on real pictures and real weights.

# scikit-image's bundled colour photographs (no download needed).
PHOTOGRAPHS = (
    "astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry",
    "hubble_deep_field", "colorwheel",
)


def photographs(size: int, count: int) -> np.ndarray:
    """``count`` real pictures, float32 in [0, 255]: each photograph whole, mirrored,
    its centre and its centre mirrored, resized to ``size`` x ``size``."""
    import skimage.data

    pictures = []
    for name in PHOTOGRAPHS:
        photo = np.asarray(getattr(skimage.data, name)()[..., :3], dtype="float32")
        height, width = photo.shape[:2]
        centre = photo[height // 8 : height - height // 8, width // 8 : width - width // 8]
        for variant in (photo, photo[:, ::-1], centre, centre[:, ::-1]):
            resized = keras.ops.image.resize(variant, (size, size), antialias=True)
            pictures.append(np.clip(keras.ops.convert_to_numpy(resized), 0, 255))
    return np.stack(pictures[:count]).astype("float32")


def run_tf_keras_vis(rounds: int, count: int = 32) -> dict | None:
    """Batched Grad-CAM against tf-keras-vis, MobileNetV2 with ImageNet weights, same run."""
    if keras.backend.backend() != "tensorflow":
        print("grad-cam vs tf-keras-vis: skipped, tf-keras-vis runs on TensorFlow only")
        return None
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore
    except ImportError as error:
        print(f"grad-cam vs tf-keras-vis: skipped, tf-keras-vis is not installed ({error})")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.applications.MobileNetV2(weights="imagenet")
    except Exception as error:  # no weights in the Keras cache, no network
        print(f"grad-cam vs tf-keras-vis: skipped, no ImageNet MobileNetV2 ({error})")
        return None
    size = 224
    images = keras.applications.mobilenet_v2.preprocess_input(photographs(size, count))
    classes = np.argmax(model.predict(images, verbose=0), axis=1)
    visualizer = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    score = CategoricalScore([int(c) for c in classes])
    variants = {
        "keras_smalldata": lambda: grad_cam(
            model, images, class_index=classes, layer="out_relu"
        ),
        "tf_keras_vis": lambda: visualizer(score, images, penultimate_layer="out_relu"),
    }
    first = {name: timed(fn) for name, fn in variants.items()}  # compiling included
    ours = variants["keras_smalldata"]()
    theirs = np.asarray(variants["tf_keras_vis"]())
    agreement = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved; wall-clock and this process's CPU time
        for name, fn in variants.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    t = {name: min(times) for name, times in wall.items()}
    c = {name: min(times) for name, times in cpu.items()}
    ratio = t["tf_keras_vis"] / t["keras_smalldata"]
    print(
        f"grad-cam vs tf-keras-vis | MobileNetV2 ImageNet {size} px, {count} photographs, "
        f"layer out_relu, best of {rounds} (wall clock; CPU time of the process)\n"
        f"    grad_cam (keras_smalldata), one call      {t['keras_smalldata']:7.2f} s  "
        f"CPU {c['keras_smalldata']:6.2f} s  (first call, compiling included: "
        f"{first['keras_smalldata']:.2f} s)\n"
        f"    tf-keras-vis Gradcam, one call            {t['tf_keras_vis']:7.2f} s  "
        f"CPU {c['tf_keras_vis']:6.2f} s  (first call: {first['tf_keras_vis']:.2f} s)\n"
        f"    -> keras_smalldata is x{ratio:.1f} faster (CPU time: "
        f"x{c['tf_keras_vis'] / c['keras_smalldata']:.1f}); maps agree to a correlation "
        f"of {agreement:.3f} (tf-keras-vis upsamples with scipy's zoom, we bilinearly)",
        flush=True,
    )
    return {
        "grad-cam vs tf-keras-vis": t, "cpu": c, "ratio": ratio, "correlation": agreement
    }


# ---------------------------------------------------------------------------
# Excitation on real pretrained weights.

# A spread of MobileNetV2 layers: ReLU6 layers after BatchNormalization (the
# expansions, the depthwise convolutions, the first and the last convolution)
# and linear ones (a projection, an expansion convolution before its BN).
MOBILENET_LAYERS = (
    "Conv1_relu",
    "expanded_conv_depthwise_relu",
    "block_1_expand_relu",
    "block_1_depthwise_relu",
    "block_2_expand_relu",
    "block_3_depthwise_relu",
    "block_4_expand_relu",
    "block_6_expand_relu",
    "block_7_depthwise_relu",
    "block_9_expand_relu",
    "block_10_depthwise_relu",
    "block_12_expand_relu",
    "block_13_expand_relu",
    "block_14_depthwise_relu",
    "block_16_expand_relu",
    "out_relu",
    "block_3_project",
    "block_6_expand",
)


def unresponsive_filters(model, layer, filters, size) -> np.ndarray:
    """Filters whose value before the activation hardly changes, whatever the picture.

    12 pictures (noise over the value range, 4 times wider, and normal noise of
    standard deviation 16): a filter whose value spans less than 1/1000 of the
    median span of the layer's filters is unresponsive (a channel the training
    left dead, with near-zero weights). No ascent can excite it.
    """
    from keras_smalldata._models import resolve_layer
    from keras_smalldata.viz._recording import CallRecorder

    rng = np.random.default_rng(0)
    pictures = np.concatenate(
        [
            rng.uniform(-1, 1, (4, size, size, 3)),
            4 * rng.uniform(-1, 1, (4, size, size, 3)),
            16 * rng.normal(size=(4, size, size, 3)),
        ]
    ).astype("float32")
    path, target = resolve_layer(model, layer)
    with CallRecorder([(path, target)], pre_activation=[path]) as recorder:
        recorder.run(model, pictures)
    values = np.asarray(
        keras.ops.convert_to_numpy(recorder.calls[0].before_activation())
    )[..., list(filters)]
    span = values.max(axis=(0, 1, 2)) - values.min(axis=(0, 1, 2))
    return span < 1e-3 * np.median(span)


def run_excitation(quick: bool) -> dict | None:
    size, count, steps = (64, 8, 10) if quick else (128, 32, 30)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.applications.MobileNetV2(
                weights="imagenet", include_top=False, input_shape=(size, size, 3)
            )
    except Exception as error:  # no weights in the Keras cache, no network
        print(f"excitation: skipped, no ImageNet MobileNetV2 weights ({error})")
        return None
    layers = MOBILENET_LAYERS[::3] if quick else MOBILENET_LAYERS
    print(
        f"excitation | MobileNetV2 ImageNet, {size} px, value_range (-1, 1), first "
        f"{count} filters per layer, {steps} steps\n"
        f"    {'layer':30s} {'filters':>7s} {'unresponsive':>12s} "
        f"{'Keras example':>13s} {'default':>8s} {'default, responsive':>19s}",
        flush=True,
    )
    totals = np.zeros(4)
    rows = {}
    for layer in layers:
        channels = int(model.get_layer(layer).output.shape[-1])
        filters = list(range(min(count, channels)))
        unresponsive = unresponsive_filters(model, layer, filters, size)
        fractions = []
        for objective, restarts in (("activation", 0), ("pre_activation", 2)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = filter_patterns(
                    model,
                    layer,
                    filters,
                    steps=steps,
                    value_range=(-1, 1),
                    objective=objective,
                    restarts=restarts,
                    deprocess=False,
                    seed=0,
                    verbose=0,
                )
            fractions.append(result.excited)
        before, after = fractions
        responsive = (
            after[~unresponsive].mean() if (~unresponsive).any() else float("nan")
        )
        print(
            f"    {layer:30s} {len(filters):7d} {int(unresponsive.sum()):12d} "
            f"{before.mean():13.2f} {after.mean():8.2f} {responsive:19.2f}",
            flush=True,
        )
        totals += [len(filters), unresponsive.sum(), before.sum(), after.sum()]
        rows[layer] = {
            "filters": len(filters),
            "unresponsive": int(unresponsive.sum()),
            "before": float(before.mean()),
            "after": float(after.mean()),
        }
    filters_total, unresponsive_total, before_total, after_total = totals
    print(
        f"    {'all layers':30s} {int(filters_total):7d} {int(unresponsive_total):12d} "
        f"{before_total / filters_total:13.2f} {after_total / filters_total:8.2f} "
        f"{after_total / (filters_total - unresponsive_total):19.2f}",
        flush=True,
    )
    # check that the measurement itself is right on one layer: excited means
    # the filter's mean activation rose on the returned picture
    check = filter_patterns(
        model, layers[0], [0], steps=3, value_range=(-1, 1), deprocess=False, verbose=0
    )
    measured = get_activations(model, np.asarray(check), layers[0])[layers[0]]
    assert abs(measured[0, 2:-2, 2:-2, 0].mean() - check.final_activation[0]) < 1e-3
    return rows


def run_backends(backends, argv) -> None:
    """Runs the speed part under each backend in a subprocess; prints time ratios to TensorFlow."""
    results = {}
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend)
        command = [sys.executable, __file__, "--part", "speed", "--json", *argv]
        completed = subprocess.run(
            command, env=env, capture_output=True, text=True, check=True
        )
        for line in completed.stdout.splitlines():
            if line.startswith("JSON "):
                results[backend] = json.loads(line[5:])
            else:
                print(line, flush=True)
    reference = results.get("tensorflow")
    if reference is None or len(results) < 2:
        return
    others = [b for b in backends if b != "tensorflow"]
    print(
        "time on each backend / time on TensorFlow (same run):\n    "
        + f"{'measurement':70s}"
        + "".join(f"{b:>12s}" for b in others),
        flush=True,
    )
    for key, seconds in reference.items():
        cells = "".join(
            f"{results[b][key] / seconds:12.2f}"
            if key in results[b]
            else f"{'n/a':>12s}"
            for b in others
        )
        print(f"    {key:70s}{cells}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer filters, steps and layers, one round (a few minutes; default: off)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per comparison, best kept (default: 2; 1 with --quick)",
    )
    parser.add_argument(
        "--part",
        choices=("speed", "tf-keras-vis", "excitation", "all"),
        default="all",
        help="which comparison to run (default: all)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends for the speed part, each in its own process "
        "(default: the running one)",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    # Random-weight models leave some filters dead; the excitation part counts them.
    warnings.filterwarnings("ignore", message=".*were not excited by the ascent")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}",
        flush=True,
    )
    if args.part in ("speed", "all"):
        if args.backends:
            backends = [b.strip() for b in args.backends.split(",") if b.strip()]
            unknown = sorted(set(backends) - set(BACKENDS))
            if unknown:
                parser.error(f"unknown backends {unknown}; choose from {BACKENDS}")
            passed = ["--rounds", str(rounds)] + (["--quick"] if args.quick else [])
            run_backends(backends, passed)
        else:
            results = run_speed(args.quick, rounds)
            if args.json:
                print("JSON " + json.dumps(results), flush=True)
    if args.part in ("tf-keras-vis", "all") and not args.json:
        run_tf_keras_vis(rounds if args.rounds else 3)
    if args.part in ("excitation", "all") and not args.json:
        run_excitation(args.quick)


if __name__ == "__main__":
    main()
