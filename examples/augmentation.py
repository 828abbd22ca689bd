"""Fighting overfitting: the same small convnet without and with data augmentation.

Trains the seeds' small convnet twice on the demo data (real LFW faces vs.
non-faces shipped with scikit-image): once as in the quickstart, once with
the seeds' ImageDataGenerator settings as a fused augmentation layer in
front of it (plus Dropout), and saves both sets of curves and a grid of
augmented variants of one training picture.

    python examples/augmentation.py --output-dir outputs/augmentation

On your own pictures (one sub-folder per class in train/, validation/):

    python examples/augmentation.py --data-dir path/to/cats_and_dogs_small --image-size 150
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_smalldata.augment import from_image_data_generator, show_augmentations  # noqa: E402
from keras_smalldata.data import demo_dataset  # noqa: E402
from keras_smalldata.training import plot_history, small_convnet  # noqa: E402


# --8<-- [start:augmentation]
def seeds_augmentation(seed: int) -> keras.layers.Layer:
    """The seeds' ImageDataGenerator arguments, as one layer and one resampling."""
    return from_image_data_generator(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
        seed=seed,
    )
# --8<-- [end:augmentation]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with train/ and validation/ class folders (default: demo data)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/augmentation"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    data_dir = args.data_dir or demo_dataset(image_size=args.image_size)
    size = (args.image_size, args.image_size)
    train = keras.utils.image_dataset_from_directory(
        data_dir / "train", image_size=size, batch_size=16, label_mode="binary", seed=args.seed)
    validation = keras.utils.image_dataset_from_directory(
        data_dir / "validation", image_size=size, batch_size=16, label_mode="binary",
        shuffle=False)
    output_dir = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    # --8<-- [start:show]
    augmentation = seeds_augmentation(args.seed)
    images, labels = next(iter(train))
    picture = images[int(np.argmin(labels[:, 0]))]  # a picture of class 0, float32 0-255
    figure = show_augmentations(augmentation, picture, n=8, include_original=True)
    figure.savefig(output_dir / "augmentations.png", dpi=100)
    # --8<-- [end:show]

    # --8<-- [start:train]
    results = {}
    for name, layer in (("plain", None), ("augmented", augmentation)):
        keras.utils.set_random_seed(args.seed)  # the same initial weights for both
        # The augmentation layer goes first, before the model's Rescaling; it is
        # active in fit only. Dropout(0.5) is in the model in both runs.
        model = small_convnet((args.image_size, args.image_size, 3), augmentation=layer)
        model.compile(keras.optimizers.RMSprop(1e-4), "binary_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
        plot_history(history, smoothing=0.8).savefig(output_dir / f"curves_{name}.png", dpi=100)
        h = history.history
        last = slice(-5, None)  # the last five epochs, averaged: less noise than one
        results[name] = {
            "best_val_accuracy": max(h["val_accuracy"]),
            "last5_val_loss": sum(h["val_loss"][last]) / len(h["val_loss"][last]),
            "last5_loss": sum(h["loss"][last]) / len(h["loss"][last]),
        }
    # --8<-- [end:train]

    for name, result in results.items():
        print(f"{name:9s}: best validation accuracy {result['best_val_accuracy']:.3f}; "
              f"last 5 epochs: training loss {result['last5_loss']:.3f}, "
              f"validation loss {result['last5_val_loss']:.3f}")
    print(f"figures in {output_dir}")
    return results


if __name__ == "__main__":
    main()
