"""Feature extraction with a pretrained base: run it once, cache it, train a head in seconds.

Runs a frozen VGG16 conv base (`PretrainedBase`, preprocessing inside) once
over the demo data (real LFW faces vs. non-faces shipped with scikit-image),
caches the features on disk, and trains the seeds' dense head on them; then
the same with augmented passes over the training pictures
(``augment_rounds``). Run it twice: the second run loads the features from
the cache instead of running VGG16 again.

    python examples/feature_extraction.py --output-dir outputs/feature_extraction

``--weights imagenet`` (the default) needs Keras' ImageNet weights file;
when it cannot be loaded the script says so loudly and goes on with random
weights (``--weights none``), which runs end to end but is not transfer
learning. On your own pictures (train/, validation/, test/ class folders):

    python examples/feature_extraction.py --data-dir path/to/cats_and_dogs_small --image-size 150
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402

from keras_smalldata.augment import augmentation_preset  # noqa: E402
from keras_smalldata.data import demo_dataset  # noqa: E402
from keras_smalldata.features import extract_features  # noqa: E402
from keras_smalldata.pretrained import classifier_model, pretrained_base_or_random  # noqa: E402
from keras_smalldata.training import plot_history  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (default), 'none', or the path of a VGG16 notop weights file")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with train/, validation/, test/ class folders (default: demo data)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/feature_extraction"))
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature cache (default: OUTPUT_DIR/feature_cache)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--augment-rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    output_dir = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir or output_dir / "feature_cache"

    keras.utils.set_random_seed(args.seed)
    data_dir = args.data_dir or demo_dataset(image_size=args.image_size)

    # --8<-- [start:extract]
    def load(split, shuffle):
        return keras.utils.image_dataset_from_directory(
            data_dir / split, image_size=(args.image_size, args.image_size), batch_size=20,
            label_mode="binary", shuffle=shuffle, seed=args.seed)

    # VGG16 with its preprocessing inside: it takes the pictures as they are (0-255).
    # Offline, a loud fallback to random weights keeps the script running.
    base, weights = pretrained_base_or_random(
        "vgg16", weights, input_shape=(args.image_size, args.image_size, 3))
    start = time.perf_counter()
    train = extract_features(base, load("train", True), cache_dir=cache_dir)
    validation = extract_features(base, load("validation", False), cache_dir=cache_dir)
    test = extract_features(base, load("test", False), cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    from_cache = all(f.from_cache for f in (train, validation, test))
    print(f"{len(train)} + {len(validation)} + {len(test)} samples, features "
          f"{train.feature_shape}, {'loaded from the cache' if from_cache else 'computed'} "
          f"in {seconds:.1f} s")
    # --8<-- [end:extract]

    # --8<-- [start:augmented]
    augmentation = augmentation_preset("flip_rotate_zoom", seed=args.seed)
    start = time.perf_counter()
    train_augmented = extract_features(
        base, load("train", True), augmentation=augmentation,
        augment_rounds=args.augment_rounds, seed=args.seed, cache_dir=cache_dir)
    print(f"{len(train_augmented)} training rows: 1 plain + {args.augment_rounds} augmented "
          f"passes, {'loaded from the cache' if train_augmented.from_cache else 'computed'} "
          f"in {time.perf_counter() - start:.1f} s")
    # --8<-- [end:augmented]

    # --8<-- [start:head]
    results = {"from_cache": from_cache}
    for name, train_features in (("features", train), ("features_augmented", train_augmented)):
        keras.utils.set_random_seed(args.seed)
        head = classifier_model(train_features.feature_shape)  # Flatten-Dense(256)-Dropout-Dense(1)
        head.compile(keras.optimizers.RMSprop(2e-5), "binary_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        history = head.fit(
            train_features.as_dataset(batch_size=20, shuffle=True, seed=args.seed),
            validation_data=validation.as_dataset(batch_size=20),
            epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        _, accuracy = head.evaluate(test.as_dataset(batch_size=20), verbose=0)
        plot_history(history, smoothing=0.8).savefig(output_dir / f"curves_{name}.png", dpi=100)
        print(f"{name}: {args.epochs} epochs in {seconds:.1f} s, "
              f"best validation accuracy {max(history.history['val_accuracy']):.3f}, "
              f"test accuracy {accuracy:.3f}")
        results[name] = accuracy
    # --8<-- [end:head]
    return results


if __name__ == "__main__":
    main()
