"""Benchmark: feature extraction speed, cache speed-up and peak memory.

Run from the repository root::

    python benchmarks/feature_extraction.py           # about 5-10 minutes here
    python benchmarks/feature_extraction.py --quick   # about 2 minutes

Part 1, speed, with VGG16 (``weights=None``, ``include_top=False``) at
150x150 on generated random pictures (JPEG files read with
`keras.utils.image_dataset_from_directory`, batches of 20):

- the seeds' loop: ``conv_base.predict(batch)`` for each batch of 20, into
  preallocated arrays;
- ``conv_base.predict(dataset)``;
- the floor: a compiled bare forward pass, ``model(x, training=False)`` in a
  `tf.function` (and with ``jit_compile=True``; the faster one is the floor)
  over batches already decoded in memory: no file reading, no decoding;
- the same XLA-compiled forward pass fed by the dataset (reading and decoding
  the JPEG files, as every other method does);
- `extract_features` cold (``cache_dir`` set, nothing cached yet), and
  from the cache (the same call again);
- the same for VGG16 behind a layer of the user's own (a one-line
  ``keras.layers.Layer`` subclass), cached under ``cache_key=``: it is
  compiled afresh on every call (tracing included in its cold time), and a
  hit runs the model again on the first batch stored with the entry;
- the parts of a hit: hashing the bytes of the pictures, hashing the
  weights, the layers' configurations, and the check of the model with the
  user's layer on one batch; and a hit against the compiled forward pass
  (the floor): the cache's target is a hit under 2% of the forward pass.

The cold extractions run right after a floor in each round, so that both see
the same load on a shared machine; the ratio is printed for the best round of
each and round by round.

Every method is first run once on one batch (tracing and compiling are not
counted, except as said above); the cold extraction's time for a first call
in a fresh process, tracing included, is printed as well.

Part 2, memory: peak resident memory (``ru_maxrss``) of a child process
that runs `extract_features` with a cache over 4,000 pictures, against one
over 400. So that this part takes seconds rather than an hour on this
machine, the base is a cheap stand-in with the same output as VGG16 at
150x150: ``AveragePooling2D(37) -> Conv2D(512, 1)`` gives features of shape
(4, 4, 512) (32 KiB per sample, float32) from 150x150 pictures. The same is
measured without a cache (features kept in memory) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SIZE = 150
BATCH = 20


def write_pictures(folder: Path, count: int, seed: int = 0) -> Path:
    """Writes ``count`` random 150x150 JPEG pictures in two class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        target = folder / ("cats" if i % 2 else "dogs") / f"{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        # Smooth random pictures (low-resolution noise, upscaled): they
        # compress like photos rather than like pure noise.
        small = rng.integers(0, 256, (15, 15, 3), dtype=np.uint8)
        Image.fromarray(small).resize((SIZE, SIZE), Image.BILINEAR).save(target, quality=90)
    return folder


def dataset(folder: Path, shuffle: bool = False):
    import keras

    return keras.utils.image_dataset_from_directory(
        folder, image_size=(SIZE, SIZE), batch_size=BATCH, shuffle=shuffle,
        label_mode="binary", verbose=False,
    )


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def user_layer_model(base):
    """VGG16 behind a layer of the user's own: cached only under a cache_key of the user's."""
    import keras

    class Halve(keras.layers.Layer):
        def call(self, x):
            return x * 0.5

    inputs = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inputs, Halve()(base(inputs)))


def hit_parts(base, custom, folder: Path) -> dict:
    """Times the parts of a cache hit: picture bytes, weights, configurations, the check."""
    from keras_smalldata.features._sources import files_digest
    from keras_smalldata.features.fingerprint import config_digest, weights_digest

    files = sorted(str(p) for p in folder.rglob("*.jpg"))
    batch = np.zeros((BATCH, SIZE, SIZE, 3), "float32")
    parts = {}
    for name, run in (
        ("hash_picture_bytes", lambda: files_digest(files)),
        ("hash_weights", lambda: weights_digest(base)),
        ("configurations", lambda: config_digest(base)),
        ("check_user_layer_batch", lambda: np.asarray(custom(batch, training=False))),
    ):
        run()
        parts[name] = min(timed(run)[0] for _ in range(3))
    parts["picture_megabytes"] = sum(os.path.getsize(f) for f in files) / 2**20
    return parts


def speed_part(folder: Path, samples: int, work: Path, repeats: int) -> dict:
    import keras
    import tensorflow as tf

    from keras_smalldata.features import extract_features

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    custom = user_layer_model(base)
    warm_folder = write_pictures(work / "warm", BATCH, seed=1)

    # The seeds' loop: predict per batch into preallocated arrays.
    def seeds_loop(source):
        features = np.zeros((samples, 4, 4, 512), "float32")
        labels = np.zeros((samples,), "float32")
        i = 0
        for inputs_batch, labels_batch in source:
            features_batch = base.predict(inputs_batch, verbose=0)
            features[i * BATCH : (i + 1) * BATCH] = features_batch
            labels[i * BATCH : (i + 1) * BATCH] = labels_batch.numpy()[:, 0]
            i += 1
            if i * BATCH >= samples:
                break
        return features

    batches = [x for x, _ in dataset(folder)]  # decoded in memory: the floor reads nothing
    floors = {}
    for name, jit in (("floor_tf_function", False), ("floor_jit_compile", True)):
        forward = tf.function(lambda x: base(x, training=False), jit_compile=jit)

        def run(forward=forward, data=batches):
            for x in data:
                forward(x).numpy()

        floors[name] = run

    jit_forward = tf.function(lambda x: base(x, training=False), jit_compile=True)

    def floor_reading(source=None):
        # The same compiled forward, fed by the dataset: reading and decoding
        # the JPEG files included, as in every other method below.
        for x, _ in source if source is not None else dataset(folder):
            jit_forward(x).numpy()

    floors["floor_with_reading"] = floor_reading

    runs = {}

    def cold_run(repeat=[0]):  # noqa: B006 - a counter: each run gets a fresh cache folder
        repeat[0] += 1
        data = dataset(folder)
        start = time.perf_counter()  # only extract_features is timed, not building the dataset
        result = extract_features(base, data, cache_dir=work / f"cache_{repeat[0]}", verbose=0)
        runs["cold"] = time.perf_counter() - start
        assert not result.from_cache and len(result) == samples
        np.testing.assert_allclose(result.features[:BATCH], first_batch, rtol=1e-3, atol=1e-3)

    def cold_run_user_layer(repeat=[0]):  # noqa: B006 - as above
        repeat[0] += 1
        data = dataset(folder)
        start = time.perf_counter()
        result = extract_features(
            custom, data, cache_dir=work / f"cache_user_{repeat[0]}", cache_key="halve", verbose=0
        )
        runs["cold_user_layer"] = time.perf_counter() - start
        assert not result.from_cache and len(result) == samples
        np.testing.assert_allclose(result.features[:BATCH], 0.5 * first_batch, rtol=1e-3, atol=1e-3)

    # Each cold extraction runs right after a floor, so that both see the
    # same load on a shared machine; their ratio is also taken round by round.
    methods = {
        "floor_tf_function": floors["floor_tf_function"],
        "extract_cold": cold_run,
        "floor_jit_compile": floors["floor_jit_compile"],
        "extract_cold_user_layer": cold_run_user_layer,
        "floor_with_reading": floors["floor_with_reading"],
        "seeds_loop": lambda: seeds_loop(dataset(folder)),
        "predict_dataset": lambda: base.predict(dataset(folder), verbose=0),
    }
    # Warm-up: each method once on one batch (tracing and compiling not timed).
    warm = [x for x, _ in dataset(warm_folder)]
    seeds_loop(dataset(warm_folder))
    base.predict(dataset(warm_folder), verbose=0)
    for name, run in floors.items():
        if name == "floor_with_reading":
            run(dataset(warm_folder))
        else:
            run(data=warm)
    results = {}
    results["first_call_one_batch"], _ = timed(
        lambda: extract_features(base, dataset(warm_folder), cache_dir=work / "warm_cache", verbose=0)
    )
    first_batch = base.predict(batches[0], verbose=0)  # to check the cold run's values

    times = {name: [] for name in methods}
    for repeat in range(repeats):  # round robin, so that a busy moment hits every method
        for name, method in methods.items():
            seconds, _ = timed(method)
            if name == "extract_cold":
                seconds = runs["cold"]
            elif name == "extract_cold_user_layer":
                seconds = runs["cold_user_layer"]
            times[name].append(seconds)
            print(f"  round {repeat + 1}: {name:18s} {samples / seconds:7.2f} img/s", flush=True)
    results.update({name: min(values) for name, values in times.items()})
    results["all_times"] = times

    data = dataset(folder)
    for key, model, cache, cache_key in (
        ("extract_cached", base, "cache_1", None),
        ("extract_cached_user_layer", custom, "cache_user_1", "halve"),
    ):
        cached_times = []
        for _ in range(3):  # the best of 3 (each is a full key + load + checksum)
            seconds, hit = timed(
                lambda model=model, cache=cache, cache_key=cache_key: extract_features(
                    model, data, cache_dir=work / cache, cache_key=cache_key, verbose=0
                )
            )
            assert hit.from_cache and len(hit) == samples
            cached_times.append(seconds)
        results[key] = min(cached_times)
    results["hit_parts"] = hit_parts(base, custom, folder)
    results["samples"] = samples
    return results


RSS_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
from keras_smalldata.features import extract_features
folder, mode = sys.argv[1], sys.argv[2]
inputs = keras.Input(({size}, {size}, 3))
x = keras.layers.AveragePooling2D(37)(inputs)
outputs = keras.layers.Conv2D(512, 1)(x)
model = keras.Model(inputs, outputs)
data = keras.utils.image_dataset_from_directory(
    folder, image_size=({size}, {size}), batch_size=20, shuffle=True, verbose=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if mode == "dataset_only":  # the pictures alone: read and decode, no model
    count = sum(int(x.shape[0]) for x, _ in data)
else:
    result = extract_features(model, data, cache_dir=None if mode == "memory" else mode, verbose=0)
    assert result.feature_shape == (4, 4, 512)
    count = len(result)
elapsed = time.perf_counter() - start
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(json.dumps({{"samples": count, "seconds": elapsed, "before_kib": before,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "vmhwm_kib": int(hwm[0].split()[1]) if hwm else None}}))
"""


def rss_child(folder: Path, mode: str) -> dict:
    code = RSS_CHILD.format(root=str(ROOT), size=SIZE)
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), mode],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_part(work: Path, big: int, small: int) -> dict:
    pictures = write_pictures(work / f"rss_{big}", big, seed=2)
    subset = work / f"rss_{small}"
    for path in sorted(pictures.rglob("*.jpg"))[:small]:
        target = subset / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
    results = {}
    for label, folder in ((big, pictures), (small, subset)):
        results[f"cache_{label}"] = rss_child(folder, str(work / f"rss_cache_{label}"))
        results[f"memory_{label}"] = rss_child(folder, "memory")
        results[f"dataset_only_{label}"] = rss_child(folder, "dataset_only")
        print(f"  RSS runs for {label} samples done", flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: 40 pictures, 1,000 and 100 samples for memory, "
                        "1 round (default: off)")
    parser.add_argument("--samples", type=int, default=None, help="pictures for the speed part (default: 300, 40 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of the speed part, best kept (default: 2, 1 with --quick)")
    args = parser.parse_args(argv)
    samples = args.samples or (40 if args.quick else 300)
    samples = max(BATCH, samples // BATCH * BATCH)  # the seeds' loop needs whole batches
    big, small = (1000, 100) if args.quick else (4000, 400)
    repeats = args.repeats or (1 if args.quick else 2)

    print(f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}")
    work = Path(tempfile.mkdtemp(prefix="bench_features_"))
    try:
        # The memory part runs first, while this process is still small: a
        # child process inherits its parent's ru_maxrss through fork/exec.
        print(f"Part 2 (run first): peak RSS, {big} vs {small} pictures (cheap base, features (4, 4, 512))")
        memory = memory_part(work, big, small)
        import keras
        import tensorflow as tf

        print(f"keras {keras.__version__}, tensorflow {tf.__version__}")
        print(f"Part 1: VGG16 (weights=None) at {SIZE}x{SIZE}, {samples} pictures, batches of {BATCH}")
        folder = write_pictures(work / "speed", samples)
        speed = speed_part(folder, samples, work, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    floor_name = min(("floor_tf_function", "floor_jit_compile"), key=lambda k: speed[k])
    floor = samples / speed[floor_name]
    reading_floor = samples / speed["floor_with_reading"]
    rows = [
        ("seeds' loop (predict per batch of 20)", speed["seeds_loop"]),
        ("model.predict(dataset)", speed["predict_dataset"]),
        ("compiled forward, tf.function (in memory)", speed["floor_tf_function"]),
        ("compiled forward, jit_compile (in memory)", speed["floor_jit_compile"]),
        ("compiled forward, jit_compile (reading files)", speed["floor_with_reading"]),
        ("extract_features, cold (writes the cache)", speed["extract_cold"]),
        ("extract_features, from the cache", speed["extract_cached"]),
        ("same, VGG16 + a layer of yours, cold (cache_key)", speed["extract_cold_user_layer"]),
        ("same, VGG16 + a layer of yours, from the cache", speed["extract_cached_user_layer"]),
    ]
    print()
    print(f"Speed ({samples} pictures, best of {repeats} rounds; floor = "
          f"{floor_name.replace('floor_', '')}: {floor:.2f} img/s)")
    print(f"{'method':45s} {'seconds':>9s} {'img/s':>10s} {'x floor':>8s}")
    for name, seconds in rows:
        rate = samples / seconds
        print(f"{name:45s} {seconds:9.3f} {rate:10.2f} {rate / floor:8.3f}")
    cold_ratio = (samples / speed["extract_cold"]) / floor
    times = speed["all_times"]
    per_round = [
        min(tf_fn, jit) / cold
        for tf_fn, jit, cold in zip(
            times["floor_tf_function"], times["floor_jit_compile"], times["extract_cold"]
        )
    ]
    per_round_user = [
        min(tf_fn, jit) / cold
        for tf_fn, jit, cold in zip(
            times["floor_tf_function"], times["floor_jit_compile"], times["extract_cold_user_layer"]
        )
    ]
    speedup = speed["extract_cold"] / speed["extract_cached"]
    print(f"first extract_features call on one batch of {BATCH} (tracing included): "
          f"{speed['first_call_one_batch']:.2f} s")
    print(f"cold extraction / floor: {cold_ratio:.1%} (target >= 90%)")
    print("  round by round (cold / the faster floor of the same round): "
          + ", ".join(f"{r:.1%}" for r in per_round)
          + f"; median {np.median(per_round):.1%}")
    print(f"cold extraction / compiled forward reading the same files: "
          f"{(samples / speed['extract_cold']) / reading_floor:.1%}")
    print(f"cached re-run speed-up over cold: {speedup:.0f}x (target >= 100x)")
    user_ratio = (samples / speed["extract_cold_user_layer"]) / floor
    user_speedup = speed["extract_cold_user_layer"] / speed["extract_cached_user_layer"]
    floor_seconds = min(speed["floor_tf_function"], speed["floor_jit_compile"])
    print(f"cache hit / compiled forward pass (in memory): "
          f"{speed['extract_cached'] / floor_seconds:.2%} (target < 2%)")
    user_ratio = (samples / speed["extract_cold_user_layer"]) / floor
    user_speedup = speed["extract_cold_user_layer"] / speed["extract_cached_user_layer"]
    print(f"with a layer of yours (cache_key): cold / floor {user_ratio:.1%} (round by round: "
          + ", ".join(f"{r:.1%}" for r in per_round_user)
          + f"), cached speed-up {user_speedup:.0f}x (the hit checks the model on one batch)")
    parts = speed["hit_parts"]
    print(f"parts of a hit: hashing the bytes of the {samples} pictures "
          f"({parts['picture_megabytes']:.1f} MiB) {parts['hash_picture_bytes']:.3f} s, "
          f"hashing VGG16's weights {parts['hash_weights']:.3f} s, "
          f"its layers' configurations {parts['configurations']:.3f} s; "
          f"under cache_key, checking the model with your layer on one batch of {BATCH} "
          f"{parts['check_user_layer_batch']:.3f} s")
    print(f"XLA against a plain tf.function (in memory): "
          f"{speed['floor_tf_function'] / speed['floor_jit_compile']:.3f}x the speed")
    print()
    print("Peak RSS (MiB) of a child process running extract_features: 'before' = after")
    print("imports, model and dataset; 'peak' = ru_maxrss at the end; VmHWM from /proc")
    print(f"{'run':18s} {'samples':>8s} {'seconds':>8s} {'before':>8s} {'peak':>8s} {'VmHWM':>8s}")
    for key, value in memory.items():
        print(
            f"{key:18s} {value['samples']:8d} {value['seconds']:8.1f} "
            f"{value['before_kib'] / 1024:8.0f} {value['peak_kib'] / 1024:8.0f} "
            f"{(value['vmhwm_kib'] or 0) / 1024:8.0f}"
        )
    growth = (memory[f"cache_{big}"]["peak_kib"] - memory[f"cache_{small}"]["peak_kib"]) / 1024
    growth_memory = (memory[f"memory_{big}"]["peak_kib"] - memory[f"memory_{small}"]["peak_kib"]) / 1024
    growth_data = (
        memory[f"dataset_only_{big}"]["peak_kib"] - memory[f"dataset_only_{small}"]["peak_kib"]
    ) / 1024
    data_mib = (big - small) * 4 * 4 * 512 * 4 / 2**20
    print(f"with cache_dir: peak RSS {big} - {small} samples = {growth:+.0f} MiB "
          f"(target <= 200 MB; the extra features are {data_mib:.0f} MiB)")
    print(f"in memory (no cache_dir): peak RSS {big} - {small} samples = {growth_memory:+.0f} MiB")
    print(f"reading the dataset alone (no model): peak RSS {big} - {small} = {growth_data:+.0f} MiB")
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this benchmark process itself peaked at {self_peak:.0f} MiB)")


if __name__ == "__main__":
    main()
