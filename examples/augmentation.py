"""Fighting overfitting: the small convnet without and with data augmentation.

Trains the quickstart's small convnet twice on the demo data (real LFW faces
vs. non-faces shipped with scikit-image), from the same initial weights:

(a) as it is, without augmentation and without dropout;
(b) with the seeds' ImageDataGenerator settings as one augmentation layer in
    front of it, plus Dropout(0.5) before the dense layers.

It saves a grid of augmented variants of one training picture
(augmentations.png), the smoothed curves of both runs (curves_plain.png,
curves_augmented.png) and prints the best validation accuracy of each.

    python examples/augmentation.py --output-dir outputs/augmentation

On your own pictures (one sub-folder per class in train/ and validation/):

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
    """The seeds' ImageDataGenerator arguments, unchanged, as one Keras layer.

    The same layer as ``augmentation_preset("image_data_generator", seed=seed)``.
    """
    return from_image_data_generator(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=0.2,  # degrees, as it always was: almost no shear
        zoom_range=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
        seed=seed,
        name="augmentation",
    )
# --8<-- [end:augmentation]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with train/ and validation/ class folders (default: demo data)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/augmentation"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40, help="epochs of each of the two runs")
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
    images, labels = next(iter(train))  # float32 pictures in 0-255
    picture = images[int(np.argmin(labels[:, 0]))]  # a face (class 0) if the batch has one
    figure = show_augmentations(augmentation, picture, n=8, include_original=True,
                                value_range=(0, 255))
    figure.savefig(output_dir / "augmentations.png", dpi=100)
    # --8<-- [end:show]

    # --8<-- [start:train]
    runs = {
        "plain": {},  # (a) the model as it is
        "augmented": {"augmentation": augmentation, "dropout": 0.5},  # (b)
    }
    results = {}
    for name, extras in runs.items():
        keras.utils.set_random_seed(args.seed)  # the same initial weights for both
        # Pictures (0-255) -> [augmentation] -> Rescaling -> 4 Conv/MaxPool blocks
        # -> Flatten -> [Dropout] -> Dense(256) -> Dense(1, sigmoid). The seeded
        # Dropout keeps the initial weights of the layers after it the same.
        model = small_convnet((args.image_size, args.image_size, 3), seed=args.seed,
                              **{"dropout": 0.0, **extras})
        model.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
        figure = plot_history(history, smoothing=0.8)  # raw points and smoothed lines
        figure.savefig(output_dir / f"curves_{name}.png", dpi=100)
        results[name] = history.history
    # --8<-- [end:train]

    summary = {}
    for name, h in results.items():
        last = slice(-5, None)  # the last five epochs, averaged: less noise than one
        summary[name] = {
            "best_val_accuracy": max(h["val_accuracy"]),
            "last5_loss": float(np.mean(h["loss"][last])),
            "last5_val_loss": float(np.mean(h["val_loss"][last])),
        }
        print(f"{name:9s}: best validation accuracy {summary[name]['best_val_accuracy']:.3f}; "
              f"last 5 epochs: training loss {summary[name]['last5_loss']:.3f}, "
              f"validation loss {summary[name]['last5_val_loss']:.3f}")
    print(f"figures in {output_dir}")
    return summary


if __name__ == "__main__":
    main()
