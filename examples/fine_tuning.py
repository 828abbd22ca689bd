"""The seeds' three pretrained-VGG16 workflows with `PretrainedBase`, on the demo data.

1. Feature extraction: a frozen VGG16 conv base + the seeds' dense head.
2. The same with data augmentation in front of the frozen base.
3. Fine-tuning: continue from (2) with block5 unfrozen, RMSprop(1e-5).

The base takes the pictures as they come from the folder (pixel values
0-255) and applies VGG16's own preprocessing itself.

    python examples/fine_tuning.py --output-dir outputs/fine_tuning

``--weights imagenet`` (the default) needs Keras' ImageNet weights file, which
Keras downloads once into ~/.keras/models (or $KERAS_HOME/models). Offline,
download ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` elsewhere and
pass ``--weights path/to/that.h5``. When the download fails the script says
so loudly and continues with random weights (``--weights none``): it still
runs end to end, but that is not transfer learning and the accuracies show it.

On your own pictures (one sub-folder per class in train/, validation/, test/):

    python examples/fine_tuning.py --data-dir path/to/cats_and_dogs_small --image-size 150
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402

from keras_smalldata.augment import augmentation_preset  # noqa: E402
from keras_smalldata.data import demo_dataset  # noqa: E402
from keras_smalldata.pretrained import (  # noqa: E402
    PretrainedBase,
    add_classifier_head,
    pretrained_base_or_random,
)
from keras_smalldata.training import plot_history  # noqa: E402


# --8<-- [start:model]
def build_model(base: PretrainedBase, image_size: int, augment: bool) -> keras.Model:
    """Pictures (0-255) -> [augmentation] -> frozen base -> the seeds' dense head."""
    inputs = keras.Input((image_size, image_size, 3))
    # The seeds' second-edition block: horizontal flip, rotation 0.1, zoom 0.2.
    x = augmentation_preset("flip_rotate_zoom")(inputs) if augment else inputs
    outputs = add_classifier_head(base(x))  # Flatten -> Dense(256) -> Dropout -> Dense(1)
    return keras.Model(inputs, outputs)
# --8<-- [end:model]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (default), 'none', or the path of a VGG16 notop weights file")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with train/, validation/, test/ class folders (default: demo data)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/fine_tuning"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each workflow")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights

    keras.utils.set_random_seed(args.seed)
    data_dir = args.data_dir or demo_dataset(image_size=args.image_size)
    size = (args.image_size, args.image_size)

    def load(split, shuffle):
        return keras.utils.image_dataset_from_directory(
            data_dir / split, image_size=size, batch_size=16, label_mode="binary",
            shuffle=shuffle, seed=args.seed,
        )

    train, validation, test = load("train", True), load("validation", False), load("test", False)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    results = {}

    def run(name, model, optimizer):
        if optimizer is not None:
            model.compile(optimizer, "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
        _, accuracy = model.evaluate(test, verbose=0)
        plot_history(history, smoothing=0.8).savefig(args.output_dir / f"{name}.png", dpi=100)
        results[name] = accuracy
        print(f"{name}: test accuracy {accuracy:.3f}")

    # --8<-- [start:phases]
    # 1. Frozen base + head. Without ImageNet weights (offline), a loud fallback
    # to random weights keeps the script running; `weights` then is None.
    shape = (args.image_size, args.image_size, 3)
    base, weights = pretrained_base_or_random("vgg16", weights, input_shape=shape)
    base.freeze()
    print(base.trainable_summary())
    run("frozen_base", build_model(base, args.image_size, augment=False),
        keras.optimizers.RMSprop(2e-5))

    # 2. Frozen base, augmentation in front of it.
    base = PretrainedBase("vgg16", input_shape=shape, weights=weights)
    base.freeze()
    model = build_model(base, args.image_size, augment=True)
    run("frozen_base_augmented", model, keras.optimizers.RMSprop(2e-5))

    # 3. Fine-tuning: unfreeze block5 and recompile (done by recompile=model).
    base.freeze_until("block5_conv1", recompile=model, optimizer=keras.optimizers.RMSprop(1e-5))
    print(base.trainable_summary())
    run("fine_tuning", model, optimizer=None)
    # --8<-- [end:phases]

    print("weights:", weights, "| test accuracies:",
          {k: round(v, 3) for k, v in results.items()}, f"| curves in {args.output_dir}")
    return results


if __name__ == "__main__":
    main()
