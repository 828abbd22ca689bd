"""Quickstart: the seeds' small convnet trained from scratch on the demo data.

Runs offline in about a minute on 2 CPU cores: it writes the demo dataset
(real LFW faces vs. non-faces shipped with scikit-image), trains a small
convnet on it and saves the training curves as a PNG.

    python examples/quickstart.py --output-dir outputs/quickstart

On your own pictures (one sub-folder per class in train/ and validation/):

    python examples/quickstart.py --data-dir path/to/cats_and_dogs_small
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402

import keras_smalldata as ks  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with train/ and validation/ class folders (default: demo data)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/quickstart"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    # --8<-- [start:data]
    data_dir = args.data_dir or ks.demo_dataset(image_size=args.image_size)
    size = (args.image_size, args.image_size)
    train = keras.utils.image_dataset_from_directory(
        data_dir / "train", image_size=size, batch_size=16, label_mode="binary", seed=args.seed)
    validation = keras.utils.image_dataset_from_directory(
        data_dir / "validation", image_size=size, batch_size=16, label_mode="binary")
    # --8<-- [end:data]

    # --8<-- [start:train]
    # Rescaling -> four Conv/MaxPool blocks (32, 64, 128, 128 filters) -> Flatten
    # -> Dropout(0.5) -> Dense(256) -> Dense(1, sigmoid): the seeds' first model.
    model = ks.small_convnet((args.image_size, args.image_size, 3))
    model.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy",
                  metrics=["accuracy"])
    args.output_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        # Adds loss_smoothed, val_loss_smoothed... to the logs; it comes first so
        # that the checkpoint after it can read them.
        ks.CurveSmoothing(factor=0.8),
        # The best raw epoch is kept on disk: the smoothed curve lags behind.
        keras.callbacks.ModelCheckpoint(
            args.output_dir / "best.keras", monitor="val_loss", save_best_only=True),
    ]
    history = model.fit(train, validation_data=validation, epochs=args.epochs,
                        callbacks=callbacks, verbose=2)
    # --8<-- [end:train]

    # --8<-- [start:curves]
    figure = ks.plot_history(history, smoothing=0.8)
    curves = args.output_dir / "curves.png"
    figure.savefig(curves, dpi=100)
    ks.save_history(history, args.output_dir / "history.json")
    # --8<-- [end:curves]
    best_epoch = min(range(len(history.history["val_loss"])),
                     key=history.history["val_loss"].__getitem__)
    best = history.history["val_accuracy"][best_epoch]
    print(f"lowest validation loss at epoch {best_epoch + 1}: validation accuracy "
          f"{best:.3f}; best validation accuracy {max(history.history['val_accuracy']):.3f}")
    print(f"curves saved to {curves}; best model saved to {args.output_dir / 'best.keras'}")
    return {"best_val_accuracy": max(history.history["val_accuracy"]), "curves": curves}


if __name__ == "__main__":
    main()
