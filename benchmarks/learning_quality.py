"""Benchmark: what each step of the small-data recipe buys, on real data.

Trains each strategy through the library's public API at several training sizes,
with several seeds each, and records the test accuracy of every run:

1. ``scratch``: `small_convnet` trained from scratch (no augmentation, no dropout);
2. ``scratch_augmented``: the same with the classic ImageDataGenerator
   augmentation in front and ``Dropout(0.5)``;
3. ``features``: a frozen ImageNet MobileNetV2 base run once by
   `extract_features`, and the classic dense head trained on its features;
4. ``features_augmented``: the same with 4 augmented passes
   (``augment_rounds=4``) over the training pictures;
5. ``fine_tuning``: the classic recipe: augmentation -> MobileNetV2 -> head,
   the head first on the frozen base, then the base's last block unfrozen
   (``unfreeze_last_block``) with RMSprop at 1e-5;
6. ``discriminative``: the same first phase, then the whole base unfrozen with
   learning rates per block (`DiscriminativeOptimizer`, layer decay);
7. ``gradual_unfreezing``: the same first phase, then one more block of the
   base training at each epoch of the second phase (`GradualUnfreezing`);
8. ``recipe``: the recipe the library recommends (tutorial 4): flips and small
   shifts in one fused pass (`ImageDataGeneratorAugmentation`), a linear head
   on the pooled base, label smoothing 0.1; the head first on the frozen base,
   then the WHOLE base (BatchNormalization kept in inference mode) with AdamW
   under a `OneCycle` schedule, a `CollapseCheck` on the validation pictures,
   and test-time augmentation (`predict_with_tta`, identity + horizontal flip).
   ``recipe`` runs also record ``recipe_without_tta`` (the same model, one view).
9. Variants of the recipe, each changing ONE thing, to measure what each tool
   adds: ``recipe_constant_rate`` (no one-cycle: the peak rate throughout),
   ``recipe_lr_range_test`` (the second phase's peak rate suggested by
   `lr_range_test` on the training pictures instead of the fixed one) and
   ``recipe_mixup`` (MixUp on the training batches, `mixing_augmentation`);
   and ``recipe_ensemble``, which changes the budget instead: the recipe
   trained ``ensemble_models`` times on the same pictures (other seeds for the
   head, the dropout, the augmentation and the order of the batches), each
   model's test-time prediction turned into probabilities and the
   probabilities averaged over the models. Its runs
   also record ``recipe_ensemble_first_model``, the first of those models alone.

Data: ``--task fashion_tops`` (the default; Fashion-MNIST's four upper-body
classes through `demo_dataset`, 500 training pictures per class to draw from,
50 validation and 250 test pictures per class, the test pictures from the
official test split), ``--task faces`` (the easy demo data), or ``--data DIR``:
any folder with ``train/``, ``validation/`` and ``test/`` class folders, any
number of classes. With each seed, ``n`` training pictures per class are drawn
from ``train/``; the validation pictures serve the collapse check only; the test
pictures are the same for every run. Every setting below was chosen on
validation pictures drawn from the training split, before any test figure was
seen, and is the same at every size; the settings are printed and written with
the results.

A run that collapses (NaN, or one class for every picture) is caught by
`CollapseCheck`, reported with its reason, and left out of the means (the table
counts it).

Needs MobileNetV2's ImageNet weights in the Keras cache (on the project's
machines: ``bash ../shared/weights/install.sh``) and, for fashion_tops,
Fashion-MNIST in Keras' dataset cache (``../shared/data/install.sh``).

    python benchmarks/learning_quality.py --strategies features recipe
    python benchmarks/learning_quality.py --data my_folders --sizes 10 50
    python benchmarks/learning_quality.py --from-results a.json b.json
"""

from __future__ import annotations

import argparse
import json
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
    "recipe",
    "recipe_constant_rate",
    "recipe_lr_range_test",
    "recipe_mixup",
    "recipe_ensemble",
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
PHASE_STEPS = 150  # gradient steps of each classic fine-tuning phase
AUGMENT_ROUNDS = 4
FINE_TUNING_RATE = 1e-5  # RMSprop, second phase (the classic recipe's rate)
LAYER_DECAY = 0.7  # per block, below the last one (timm's usual range: 0.65-0.75)
HEAD_MULTIPLIER = 10.0  # the head keeps the first phase's rate (1e-4)
GRADUAL_BLOCKS = 5  # block_16 ... block_12, one more per epoch of PHASE_STEPS / 5 steps
# The recommended recipe (chosen on validation pictures, see the page).
RECIPE = {
    "image_size": 96,  # pixels per side (128 was tried: see the page)
    "batch_size": 32,
    "head_steps": 60,  # phase 1: the head on the frozen base
    "head_rate": 1e-3,
    "steps": 400,  # phase 2: the whole base
    "rate": 3e-4,  # phase 2's peak rate (AdamW, OneCycle)
    "weight_decay": 1e-4,
    "warmup_fraction": 0.1,
    "label_smoothing": 0.1,
    "dropout": 0.2,
    "shift": 0.1,
    "mixup_alpha": 0.2,
    "ensemble_models": 3,  # recipe_ensemble only
}


def load_folders(root: Path, size: int):
    """(train x, y), (validation x, y), (test x, y), class names from class folders."""
    keras = ks.import_keras_quietly()

    def arrays(split):
        data = keras.utils.image_dataset_from_directory(
            root / split, image_size=(size, size), batch_size=64,
            shuffle=False, verbose=False,
        )
        xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in data))
        return (np.concatenate(xs), np.concatenate(ys).astype("int64")), data.class_names

    (train, names), (validation, _), (test, _) = (arrays(s) for s in
                                                  ("train", "validation", "test"))
    return train, validation, test, names


def subset(labels, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = []
    for value in np.unique(labels):
        pool = np.flatnonzero(labels == value)
        if len(pool) < per_class:
            raise SystemExit(f"class {value} has {len(pool)} training pictures, "
                             f"fewer than the {per_class} asked for")
        chosen.append(rng.choice(pool, per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def targets(y, classes: int):
    """The labels as the classic heads take them: (n, 1) floats for 2 classes."""
    return y[:, None].astype("float32") if classes == 2 else y


def classic_loss(classes: int) -> str:
    return "binary_crossentropy" if classes == 2 else "sparse_categorical_crossentropy"


def training_data(x, y, steps: int, seed: int, batch_size: int = BATCH_SIZE):
    """A shuffled, repeated tf.data pipeline giving ``steps`` batches in all."""
    import tensorflow as tf  # started quietly by main()

    data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.repeat().batch(batch_size).take(steps)


def classes_of(outputs) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.shape[-1] == 1:  # one sigmoid probability
        return (outputs[:, 0] > 0.5).astype("int64")
    return outputs.argmax(axis=-1)


def accuracy(outputs, y) -> float:
    return float(np.mean(classes_of(outputs) == y))


def run_scratch(x, y, test, seed, classes, augmented: bool) -> dict:
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    options = {"dropout": 0.0}
    if augmented:
        options = {
            "augmentation": ks.augmentation_preset("image_data_generator", seed=seed),
            "dropout": 0.5,
        }
    model = ks.small_convnet((IMAGE_SIZE, IMAGE_SIZE, 3), num_classes=classes,
                             seed=seed, **options)
    model.compile(keras.optimizers.RMSprop(1e-4), classic_loss(classes))
    model.fit(training_data(x, targets(y, classes), SCRATCH_STEPS, seed), verbose=0)
    return {"test_accuracy": accuracy(model.predict(test[0], verbose=0), test[1])}


def run_features(base, x, y, test_features, seed, classes, augmented: bool) -> dict:
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    if augmented:
        train = ks.extract_features(
            base, (x, y), augmentation=ks.augmentation_preset("flip_rotate_zoom"),
            augment_rounds=AUGMENT_ROUNDS, seed=seed, verbose=0,
        )
    else:
        train = ks.extract_features(base, (x, y), verbose=0)
    head = ks.classifier_model(train.feature_shape, num_classes=classes)
    head.compile(keras.optimizers.RMSprop(1e-4), classic_loss(classes))
    features, labels = train.numpy()
    head.fit(training_data(features, targets(labels.astype("int64"), classes),
                           HEAD_STEPS, seed), verbose=0)
    outputs = head.predict(test_features.features, verbose=0)
    return {"test_accuracy": accuracy(outputs, np.asarray(test_features.labels))}


def run_fine_tuning(x, y, test, seed, classes, strategy: str) -> dict:
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    base = ks.PretrainedBase("mobilenet_v2", input_shape=shape, weights="imagenet")
    inputs = keras.Input(shape)
    augmented = ks.augmentation_preset("flip_rotate_zoom", seed=seed)(inputs)
    model = keras.Model(inputs, ks.add_classifier_head(base(augmented), num_classes=classes))
    # Phase 1, the same for every classic fine-tuning strategy: the head, base frozen.
    base.freeze()
    model.compile(keras.optimizers.RMSprop(1e-4), classic_loss(classes))
    model.fit(training_data(x, targets(y, classes), PHASE_STEPS, seed), verbose=0)
    second = training_data(x, targets(y, classes), PHASE_STEPS, seed + 1)
    rmsprop = keras.optimizers.RMSprop(FINE_TUNING_RATE)
    if strategy == "fine_tuning":
        base.unfreeze_last_block(recompile=model, optimizer=rmsprop)
        model.fit(second, verbose=0)
    elif strategy == "discriminative":
        optimizer = ks.DiscriminativeOptimizer(
            rmsprop, model, layer_decay=LAYER_DECAY,
            multipliers={re.compile("head_.*"): HEAD_MULTIPLIER},
        )
        base.unfreeze(recompile=model, optimizer=optimizer)
        model.fit(second, verbose=0)
    else:
        lowest = f"block_{17 - GRADUAL_BLOCKS}"
        base.freeze_until(lowest, recompile=model,
                          optimizer=ks.DiscriminativeOptimizer(rmsprop, model))
        unfreezing = ks.GradualUnfreezing(base, every=1, initial_blocks=1)
        model.fit(second, epochs=GRADUAL_BLOCKS, steps_per_epoch=PHASE_STEPS // GRADUAL_BLOCKS,
                  callbacks=[unfreezing], verbose=0)
    return {"test_accuracy": accuracy(model.predict(test[0], verbose=0), test[1])}


def recipe_model(classes: int, seed: int):
    """Augmentation -> MobileNetV2 (pooled) -> dropout -> logits, and its base."""
    keras = ks.import_keras_quietly()
    shape = (RECIPE["image_size"], RECIPE["image_size"], 3)
    base = ks.PretrainedBase("mobilenet_v2", input_shape=shape, weights="imagenet",
                             pooling="avg")
    augmentation = ks.ImageDataGeneratorAugmentation(
        width_shift_range=RECIPE["shift"], height_shift_range=RECIPE["shift"],
        horizontal_flip=True, fill_mode="nearest", seed=seed,
    )
    inputs = keras.Input(shape)
    features = base(augmentation(inputs))
    features = keras.layers.Dropout(RECIPE["dropout"], seed=seed)(features)
    outputs = keras.layers.Dense(classes, name="logits")(features)
    return keras.Model(inputs, outputs), base


def recipe_optimizer(rate: float, steps: int, one_cycle: bool = True):
    keras = ks.import_keras_quietly()
    if one_cycle:
        rate = ks.OneCycle(rate, total_steps=steps,
                           warmup_fraction=RECIPE["warmup_fraction"])
    return keras.optimizers.AdamW(rate, weight_decay=RECIPE["weight_decay"])


def train_recipe(x, y, validation, seed, classes, strategy: str):
    """One model trained by the recipe (or one of its variants), and what to record."""
    keras = ks.import_keras_quietly()
    keras.utils.set_random_seed(seed)
    model, base = recipe_model(classes, seed)
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=RECIPE["label_smoothing"])
    one_hot = keras.utils.to_categorical(y, classes)
    batch = RECIPE["batch_size"]
    first = training_data(x, one_hot, RECIPE["head_steps"], seed, batch)
    second = training_data(x, one_hot, RECIPE["steps"], seed + 1, batch)
    if strategy == "recipe_mixup":
        mix = ks.mixing_augmentation("mixup", num_classes=classes, label_mode="categorical",
                                     alpha=RECIPE["mixup_alpha"], seed=seed)
        second = second.map(mix)
    one_cycle = strategy != "recipe_constant_rate"
    # Phase 1: the head on the frozen base.
    base.freeze()
    model.compile(recipe_optimizer(RECIPE["head_rate"], RECIPE["head_steps"], one_cycle), loss)
    model.fit(first, verbose=0)
    # Phase 2: the whole base.
    rate = RECIPE["rate"]
    extra = {}
    if strategy == "recipe_lr_range_test":
        base.unfreeze(recompile=model, optimizer=keras.optimizers.AdamW(
            RECIPE["rate"], weight_decay=RECIPE["weight_decay"]))
        found = ks.lr_range_test(model, training_data(x, one_hot, 100, seed + 2, batch),
                                 verbose=0)
        # No suggestion (the loss never fell): the recipe's own rate, said so.
        rate = float(found.suggestion) if found.suggestion else RECIPE["rate"]
        extra.update(rate=rate, suggestion=found.suggestion)
        model.compile(recipe_optimizer(rate, RECIPE["steps"], one_cycle), loss)
    else:
        base.unfreeze(recompile=model,
                      optimizer=recipe_optimizer(rate, RECIPE["steps"], one_cycle))
    check = ks.CollapseCheck(validation[0], validation[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ks.TrainingCollapseWarning)  # reported below
        model.fit(second, verbose=0, callbacks=[check])
    if check.collapse:
        extra["collapsed"] = check.collapse
    return model, extra


def run_recipe(x, y, validation, test, seed, classes, strategy: str) -> list[dict]:
    keras = ks.import_keras_quietly()
    flips = ("none", "horizontal")
    if strategy == "recipe_ensemble":
        # The models' seeds stay clear of the other runs' seeds (0, 1, 2, ...).
        seeds = [seed + 1000 * k for k in range(RECIPE["ensemble_models"])]
        probabilities, collapses = [], []
        for model_seed in seeds:
            model, extra = train_recipe(x, y, validation, model_seed, classes, strategy)
            if extra.get("collapsed"):
                collapses.append(extra["collapsed"])
            views = ks.predict_with_tta(model, test[0], flips=flips, batch_size=64)
            probabilities.append(keras.ops.convert_to_numpy(keras.ops.softmax(views)))
        extra = {"models": len(seeds)}
        if collapses:
            extra["collapsed"] = "; ".join(collapses)
        return [{"test_accuracy": accuracy(np.mean(probabilities, axis=0), test[1]), **extra},
                {"strategy": "recipe_ensemble_first_model",
                 "test_accuracy": accuracy(probabilities[0], test[1]), **extra}]
    model, extra = train_recipe(x, y, validation, seed, classes, strategy)
    averaged = ks.predict_with_tta(model, test[0], flips=flips, batch_size=64)
    runs = [{"test_accuracy": accuracy(averaged, test[1]), **extra}]
    if strategy == "recipe":
        plain = model.predict(test[0], batch_size=64, verbose=0)
        runs.append({"strategy": "recipe_without_tta",
                     "test_accuracy": accuracy(plain, test[1]), **extra})
    return runs


def summarise(runs) -> dict:
    """{strategy: {size: summary}} over the runs that did not collapse."""
    grouped = {}
    for run in runs:
        grouped.setdefault(run["strategy"], {}).setdefault(str(run["size"]), []).append(run)
    summary = {}
    for strategy, by_size in grouped.items():
        for size, group in by_size.items():
            values = np.array([r["test_accuracy"] for r in group if not r.get("collapsed")])
            summary.setdefault(strategy, {})[size] = {
                "mean": float(values.mean()) if len(values) else float("nan"),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "min": float(values.min()) if len(values) else float("nan"),
                "max": float(values.max()) if len(values) else float("nan"),
                "runs": len(group),
                "collapsed": sum(1 for r in group if r.get("collapsed")),
            }
    return summary


def table(summary, sizes, classic: bool) -> str:
    header = ["strategy"] + [f"{n} per class" for n in sizes]
    header += ["classic (2,000)"] if classic else []
    rows = []
    listed = STRATEGIES + ("recipe_without_tta", "recipe_ensemble_first_model")
    for strategy in [s for s in listed if s in summary]:
        cells = [strategy]
        for n in sizes:
            s = summary[strategy].get(str(n))
            if s is None:
                cells.append("-")
                continue
            kept = s["runs"] - s["collapsed"]
            cell = f"{s['mean']:.3f} ± {s['std']:.3f} ({kept} run{'s' * (kept != 1)})"
            if not kept:
                cell = "-"
            if s["collapsed"]:
                cell += f", {s['collapsed']} collapsed"
            cells.append(cell)
        if classic:
            cells.append(f"{CLASSIC[strategy]:.2f}" if strategy in CLASSIC else "-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def plot(summary, sizes, title: str, test_pictures: int, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = figure.add_subplot()
    shown = [s for s in STRATEGIES if s in summary and not s.startswith("recipe_")]
    for index, strategy in enumerate(shown):
        present = [n for n in sizes if str(n) in summary[strategy]]
        means = np.array([summary[strategy][str(n)]["mean"] for n in present])
        lows = np.array([summary[strategy][str(n)]["min"] for n in present])
        highs = np.array([summary[strategy][str(n)]["max"] for n in present])
        offset = (index - (len(shown) - 1) / 2) * 0.025
        positions = np.array(present, dtype=float) * (1 + offset)
        spread = [np.maximum(means - lows, 0.0), np.maximum(highs - means, 0.0)]
        ax.errorbar(positions, means, yerr=spread, marker="o", capsize=3, label=strategy)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("training pictures per class")
    ax.set_ylabel(f"test accuracy ({test_pictures:,} pictures)")
    ax.set_title(f"{title}: mean, min and max over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    figure.savefig(path, dpi=110)


def report(records, plot_path: Path | None) -> None:
    """Prints the settings and the table of one or more result files, and plots them."""
    runs = [run for record in records for run in record["runs"]]
    for record in records:
        print(record["settings"])
    sizes = sorted({int(r["size"]) for r in runs})
    summary = summarise(runs)
    settings = records[0]["settings"]
    print(table(summary, sizes, classic=settings.get("task") == "faces"))
    for run in runs:
        if run.get("collapsed"):
            print(f"collapsed: {run['strategy']} {run['size']} per class, seed "
                  f"{run['seed']} ({run['collapsed']}), test accuracy "
                  f"{run['test_accuracy']:.3f} left out of the mean")
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot(summary, sizes, settings.get("title", "learning quality"),
             settings.get("test_pictures", 0), plot_path)


def dataset_root(args) -> tuple[Path, str]:
    if args.data is not None:
        return args.data, f"{args.data.name} (own folders)"
    if args.task == "faces":
        return ks.demo_dataset("faces", image_size=IMAGE_SIZE), "Demo data (faces vs. other patches)"
    return (
        ks.demo_dataset("fashion_tops", splits=(500, 50, 250)),
        "Fashion-MNIST upper-body classes",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--task", choices=("fashion_tops", "faces"), default="fashion_tops",
                        help="demo task (ignored with --data)")
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder with train/, validation/ and test/ class folders")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 25, 100],
                        help="training pictures per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one draw of the training pictures per seed")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES[:8]),
                        choices=STRATEGIES, metavar="STRATEGY",
                        help=f"from {', '.join(STRATEGIES)}")
    parser.add_argument("--output", type=Path, default=Path("learning_quality.json"),
                        help="JSON file of the runs (rewritten after each run)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG file of the plot")
    parser.add_argument("--from-results", type=Path, nargs="+", default=None,
                        help="only print and plot these result files, merged")
    args = parser.parse_args()
    if args.from_results:
        report([json.loads(p.read_text()) for p in args.from_results], args.plot)
        return

    keras = ks.import_keras_quietly()
    # Keras warns at every fit on a tf.data dataset that fit's default
    # shuffle=True is ignored; these datasets shuffle themselves.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    root, title = dataset_root(args)
    (train_x, train_y), validation, test, class_names = load_folders(root, IMAGE_SIZE)
    classes = len(class_names)
    recipe_data = None
    if any(s.startswith("recipe") for s in args.strategies):
        recipe_data = load_folders(root, RECIPE["image_size"])
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    try:
        base = ks.PretrainedBase("mobilenet_v2", input_shape=shape, weights="imagenet")
    except FileNotFoundError as error:
        raise SystemExit(f"This benchmark needs MobileNetV2's ImageNet weights.\n{error}") from None
    base.freeze()
    test_features = None
    settings = {
        "task": "own" if args.data else args.task, "title": title, "data": str(root),
        "classes": class_names, "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE,
        "scratch_steps": SCRATCH_STEPS, "head_steps": HEAD_STEPS,
        "phase_steps": PHASE_STEPS, "augment_rounds": AUGMENT_ROUNDS,
        "fine_tuning_rate": FINE_TUNING_RATE, "layer_decay": LAYER_DECAY,
        "head_multiplier": HEAD_MULTIPLIER, "gradual_blocks": GRADUAL_BLOCKS,
        "recipe": RECIPE, "sizes": args.sizes, "seeds": args.seeds,
        "keras": keras.__version__, "backend": keras.backend.backend(),
        "validation_pictures": int(len(validation[1])), "test_pictures": int(len(test[1])),
    }
    print(settings, flush=True)
    record = {"settings": settings, "runs": []}
    started = time.perf_counter()
    for strategy in args.strategies:
        for n in args.sizes:
            for seed in args.seeds:
                chosen = subset(train_y, n, seed)
                x, y = train_x[chosen], train_y[chosen]
                run_started = time.perf_counter()
                if strategy.startswith("scratch"):
                    results = [run_scratch(x, y, test, seed, classes,
                                           strategy == "scratch_augmented")]
                elif strategy.startswith("features"):
                    if test_features is None:
                        test_features = ks.extract_features(base, test, verbose=0)
                    results = [run_features(base, x, y, test_features, seed, classes,
                                            strategy == "features_augmented")]
                elif strategy.startswith("recipe"):
                    (big_x, _), big_validation, big_test, _ = recipe_data
                    results = run_recipe(big_x[chosen], y, big_validation, big_test, seed,
                                         classes, strategy)
                else:
                    results = [run_fine_tuning(x, y, test, seed, classes, strategy)]
                seconds = time.perf_counter() - run_started
                for result in results:
                    run = {"strategy": strategy, "size": n, "seed": seed,
                           "seconds": round(seconds, 1), **result}
                    record["runs"].append(run)
                    note = f" COLLAPSED ({run['collapsed']})" if run.get("collapsed") else ""
                    print(f"  {n:>3} per class  {run['strategy']:<22} seed {seed}: "
                          f"{run['test_accuracy']:.3f}  {seconds / 60:.1f} min{note}",
                          flush=True)
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(json.dumps(record, indent=1) + "\n")
    print()
    report([record], args.plot)
    print(f"\nruns in {args.output}; {(time.perf_counter() - started) / 60:.0f} minutes")


if __name__ == "__main__":
    main()
