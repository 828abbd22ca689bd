"""Benchmark: what each step of the small-data recipe buys, on real data.

Runs the recipe's strategies through the library's public API on the demo data
(scikit-image's subset of Labeled Faces in the Wild: faces against other
patches), at several training sizes, with several seeds each, and prints and
plots the test accuracy (mean, standard deviation, min and max over the seeds):

1. ``scratch``: `small_convnet` trained from scratch (no augmentation, no dropout);
2. ``scratch_augmented``: the same with the classic ImageDataGenerator
   augmentation in front and ``Dropout(0.5)``;
3. ``features``: a frozen ImageNet MobileNetV2 base run once by
   `extract_features`, and the classic dense head trained on its features;
4. ``features_augmented``: the same with 4 augmented passes
   (``augment_rounds=4``) over the training pictures;
5. ``fine_tuning``: augmentation -> MobileNetV2 -> head trained end to end, the
   head first on the frozen base, then the base's last block unfrozen
   (``unfreeze_last_block``) with a ten times lower learning rate;
6. ``discriminative``: the same first phase, then the whole base unfrozen with
   learning rates per block (`DiscriminativeOptimizer`, timm-style layer decay:
   the last block at the fine-tuning rate, each block below it ``LAYER_DECAY``
   times less, the head ``HEAD_MULTIPLIER`` times more);
7. ``gradual_unfreezing``: the same first phase, then the second phase's steps
   split into ``GRADUAL_BLOCKS`` epochs, with one more block of the base
   training at each (`GradualUnfreezing`, from ``block_16`` down to
   ``block_12``), at the fine-tuning rate.

Strategies 5-7 share the first phase and the step budget of the second; only
what trains in the second phase, and how fast, differs.

Training sets of ``n`` pictures per class are drawn from the demo training split
(60 per class) with each seed; the test set is the validation and test splits
together (40 pictures per class), the same for every run. Every strategy gets a
fixed budget of gradient steps (not epochs), the same at every size, chosen
before any result was seen; nothing is tuned per size or per strategy. The
settings are printed with the results.

Needs MobileNetV2's ImageNet weights in the Keras cache (on the project's
machines: ``bash ../shared/weights/install.sh``); without them it stops, since
random weights would say nothing about transfer learning.

    python benchmarks/learning_quality.py                    # about an hour here
    python benchmarks/learning_quality.py --quick            # a few minutes, 1 seed
    python benchmarks/learning_quality.py --sizes 5 10 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import keras_smalldata as ks  # noqa: E402

STRATEGIES = (
    "scratch",
    "scratch_augmented",
    "features",
    "features_augmented",
    "fine_tuning",
    "discriminative",
    "gradual_unfreezing",
)
# Reference figures of the classic dogs-vs-cats recipe (2,000 training pictures,
# 150x150; Chollet, Deep Learning with Python, 1st ed., ch. 5).
CLASSIC = {
    "scratch": 0.71,
    "scratch_augmented": 0.82,
    "features": 0.90,
    "features_augmented": 0.96,
    "fine_tuning": 0.97,
}
IMAGE_SIZE = 96
BATCH_SIZE = 16
SCRATCH_STEPS = 300  # gradient steps of the from-scratch runs
HEAD_STEPS = 300  # gradient steps of the heads on extracted features
PHASE_STEPS = 150  # gradient steps of each fine-tuning phase
AUGMENT_ROUNDS = 4
FINE_TUNING_RATE = 1e-5  # RMSprop, second phase (the classic recipe's rate)
LAYER_DECAY = 0.7  # per block, below the last one (timm's usual range: 0.65-0.75)
HEAD_MULTIPLIER = 10.0  # the head keeps the first phase's rate (1e-4)
GRADUAL_BLOCKS = 5  # block_16 ... block_12, one more per epoch of PHASE_STEPS / 5 steps


def load_demo():
    """The demo data as arrays: (train x, train y), (test x, test y), class names."""
    keras = ks.import_keras_quietly()
    root = ks.demo_dataset(image_size=IMAGE_SIZE)

    def arrays(*splits):
        xs, ys = [], []
        for split in splits:
            data = keras.utils.image_dataset_from_directory(
                root / split, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=64,
                label_mode="binary", shuffle=False, verbose=False,
            )
            for x, y in data:
                xs.append(x.numpy())
                ys.append(y.numpy()[:, 0])
        return np.concatenate(xs), np.concatenate(ys).astype("float32")

    return arrays("train"), arrays("validation", "test")


def subset(labels, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == value), per_class, replace=False)
        for value in (0.0, 1.0)
    ]
    return rng.permutation(np.concatenate(chosen))


def training_data(x, y, steps: int, seed: int):
    """A shuffled, repeated tf.data pipeline giving ``steps`` batches in all."""
    import tensorflow as tf  # started quietly by main()

    data = tf.data.Dataset.from_tensor_slices((x, y[:, None]))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.repeat().batch(BATCH_SIZE).take(steps)


def accuracy(model, x, y) -> float:
    probabilities = model.predict(x, batch_size=64, verbose=0)[:, 0]
    return float(np.mean((probabilities > 0.5) == (y > 0.5)))


def run_scratch(x, y, test, seed, augmented: bool) -> float:
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    options = {"dropout": 0.0}
    if augmented:
        options = {
            "augmentation": ks.augmentation_preset("image_data_generator", seed=seed),
            "dropout": 0.5,
        }
    model = ks.small_convnet((IMAGE_SIZE, IMAGE_SIZE, 3), seed=seed, **options)
    model.compile(keras.optimizers.RMSprop(1e-4), "binary_crossentropy")
    model.fit(training_data(x, y, SCRATCH_STEPS, seed), epochs=1, verbose=0)
    return accuracy(model, *test)


def run_features(base, x, y, test_features, seed, augmented: bool) -> float:
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    if augmented:
        train = ks.extract_features(
            base, (x, y), augmentation=ks.augmentation_preset("flip_rotate_zoom"),
            augment_rounds=AUGMENT_ROUNDS, seed=seed, verbose=0,
        )
    else:
        train = ks.extract_features(base, (x, y), verbose=0)
    head = ks.classifier_model(train.feature_shape)
    head.compile(keras.optimizers.RMSprop(1e-4), "binary_crossentropy")
    features, labels = train.numpy()
    head.fit(training_data(features, labels, HEAD_STEPS, seed), epochs=1, verbose=0)
    return accuracy(head, test_features.features, test_features.labels)


def run_fine_tuning(x, y, test, seed, strategy: str = "fine_tuning") -> float:
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    base = ks.PretrainedBase("mobilenet_v2", input_shape=shape, weights="imagenet")
    inputs = keras.Input(shape)
    augmented = ks.augmentation_preset("flip_rotate_zoom", seed=seed)(inputs)
    model = keras.Model(inputs, ks.add_classifier_head(base(augmented)))
    # Phase 1, the same for every fine-tuning strategy: the head on the frozen base.
    base.freeze()
    model.compile(keras.optimizers.RMSprop(1e-4), "binary_crossentropy")
    model.fit(training_data(x, y, PHASE_STEPS, seed), epochs=1, verbose=0)
    # Phase 2: PHASE_STEPS more steps.
    second = training_data(x, y, PHASE_STEPS, seed + 1)
    rmsprop = keras.optimizers.RMSprop(FINE_TUNING_RATE)
    if strategy == "fine_tuning":
        base.unfreeze_last_block(recompile=model, optimizer=rmsprop)
        model.fit(second, epochs=1, verbose=0)
    elif strategy == "discriminative":
        optimizer = ks.DiscriminativeOptimizer(
            rmsprop, model, layer_decay=LAYER_DECAY,
            multipliers={re.compile("head_.*"): HEAD_MULTIPLIER},
        )
        base.unfreeze(recompile=model, optimizer=optimizer)
        model.fit(second, epochs=1, verbose=0)
    else:
        lowest = f"block_{17 - GRADUAL_BLOCKS}"
        base.freeze_until(lowest, recompile=model,
                          optimizer=ks.DiscriminativeOptimizer(rmsprop, model))
        unfreezing = ks.GradualUnfreezing(base, every=1, initial_blocks=1)
        model.fit(second, epochs=GRADUAL_BLOCKS, steps_per_epoch=PHASE_STEPS // GRADUAL_BLOCKS,
                  callbacks=[unfreezing], verbose=0)
    return accuracy(model, *test)


def summarise(values) -> dict:
    values = np.asarray(values, dtype="float64")
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "runs": [float(v) for v in values],
    }


def table(results, sizes) -> str:
    header = ["strategy"] + [f"{n} per class" for n in sizes] + ["classic (2,000)"]
    rows = []
    for strategy in results:
        cells = [strategy]
        for n in sizes:
            s = results[strategy][str(n)]
            cells.append(f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.2f}-{s['max']:.2f})")
        cells.append(f"{CLASSIC[strategy]:.2f}" if strategy in CLASSIC else "-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def plot(results, sizes, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = figure.add_subplot()
    for index, strategy in enumerate(results):
        means = np.array([results[strategy][str(n)]["mean"] for n in sizes])
        lows = np.array([results[strategy][str(n)]["min"] for n in sizes])
        highs = np.array([results[strategy][str(n)]["max"] for n in sizes])
        offset = (index - (len(results) - 1) / 2) * 0.025
        positions = np.array(sizes, dtype=float) * (1 + offset)
        spread = [np.maximum(means - lows, 0.0), np.maximum(highs - means, 0.0)]
        ax.errorbar(positions, means, yerr=spread, marker="o", capsize=3, label=strategy)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("training pictures per class")
    ax.set_ylabel("test accuracy (80 pictures)")
    ax.set_title("Demo data (faces vs. other patches): mean, min and max over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    figure.savefig(path, dpi=110)


def replot(paths, output: Path) -> None:
    """Prints the table and draws the plot of earlier runs (strategies merged)."""
    results, settings = {}, []
    for path in paths:
        record = json.loads(Path(path).read_text())
        results.update(record["results"])
        settings.append(record["settings"])
    sizes = sorted({int(n) for r in results.values() for n in r})
    for record in settings:
        print(record)
    print(table(results, sizes))
    output.mkdir(parents=True, exist_ok=True)
    plot(results, sizes, output / "learning_quality.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 25, 60])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=STRATEGIES)
    parser.add_argument("--quick", action="store_true", help="sizes 5 and 25, 1 seed")
    parser.add_argument("--output", type=Path,
                        default=ROOT / "docs" / "benchmarks" / "learning_quality")
    parser.add_argument("--from-results", type=Path, nargs="+", default=None,
                        help="only print and plot these results.json files, merged")
    args = parser.parse_args()
    if args.from_results:
        replot(args.from_results, args.output)
        return
    if args.quick:
        args.sizes, args.seeds = [5, 25], [0]
    args.output.mkdir(parents=True, exist_ok=True)

    keras = ks.import_keras_quietly()
    # Keras 3.15 warns at every fit on a tf.data dataset that fit's default
    # shuffle=True is ignored; these datasets shuffle themselves.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    try:
        base = ks.PretrainedBase("mobilenet_v2", input_shape=shape, weights="imagenet")
    except FileNotFoundError as error:
        raise SystemExit(
            f"This benchmark needs MobileNetV2's ImageNet weights.\n{error}"
        ) from None
    base.freeze()
    (train_x, train_y), test = load_demo()
    test_features = ks.extract_features(base, test, verbose=0)
    print(f"keras {keras.__version__} ({keras.backend.backend()}), MobileNetV2 "
          f"ImageNet weights, {IMAGE_SIZE}x{IMAGE_SIZE} pictures, batches of "
          f"{BATCH_SIZE}; {len(test[1])} test pictures")
    print(f"budgets: scratch {SCRATCH_STEPS} steps, heads {HEAD_STEPS} steps, "
          f"fine-tuning {PHASE_STEPS} + {PHASE_STEPS} steps (second phase RMSprop "
          f"{FINE_TUNING_RATE:g}; layer decay {LAYER_DECAY}, head x{HEAD_MULTIPLIER:g}; "
          f"gradual unfreezing over {GRADUAL_BLOCKS} blocks); "
          f"augment_rounds={AUGMENT_ROUNDS}")

    results = {strategy: {} for strategy in args.strategies}
    started = time.perf_counter()
    for n in args.sizes:
        for strategy in args.strategies:
            scores = []
            for seed in args.seeds:
                chosen = subset(train_y, n, seed)
                x, y = train_x[chosen], train_y[chosen]
                if strategy.startswith("scratch"):
                    score = run_scratch(x, y, test, seed, strategy == "scratch_augmented")
                elif strategy.startswith("features"):
                    score = run_features(
                        base, x, y, test_features, seed, strategy == "features_augmented"
                    )
                else:
                    score = run_fine_tuning(x, y, test, seed, strategy)
                scores.append(score)
                minutes = (time.perf_counter() - started) / 60
                print(f"  {n:>3} per class  {strategy:<20} seed {seed}: "
                      f"{score:.3f}   ({minutes:.1f} min)", flush=True)
            results[strategy][str(n)] = summarise(scores)

    print()
    print(table(results, args.sizes))
    record = {
        "settings": {
            "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE,
            "scratch_steps": SCRATCH_STEPS, "head_steps": HEAD_STEPS,
            "phase_steps": PHASE_STEPS, "augment_rounds": AUGMENT_ROUNDS,
            "fine_tuning_rate": FINE_TUNING_RATE, "layer_decay": LAYER_DECAY,
            "head_multiplier": HEAD_MULTIPLIER, "gradual_blocks": GRADUAL_BLOCKS,
            "sizes": args.sizes, "seeds": args.seeds, "keras": keras.__version__,
            "backend": keras.backend.backend(), "test_pictures": int(len(test[1])),
        },
        "results": results,
        "classic": CLASSIC,
    }
    (args.output / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(results, args.sizes, args.output / "learning_quality.png")
    print(f"\nresults and plot in {args.output}; "
          f"{(time.perf_counter() - started) / 60:.0f} minutes")
    if not math.isfinite(sum(s["mean"] for r in results.values() for s in r.values())):
        raise SystemExit("a run gave no finite accuracy")


if __name__ == "__main__":
    main()
