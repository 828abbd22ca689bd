"""Looking inside a convnet: activations, filter patterns, Grad-CAM, mistakes.

Trains the seeds' small convnet on the demo data (real LFW faces vs.
non-faces shipped with scikit-image) for a few epochs, or loads your model,
then draws the three classic views into the network and the test pictures
it gets wrong:

    python examples/visualization.py --output-dir outputs/visualization
    python examples/visualization.py --model my_model.keras --data-dir path/to/data

With ``--pretrained vgg16`` the model is a `PretrainedBase` (VGG16) with a
dense head, trained with the base frozen; Grad-CAM then finds the last
convolution inside the nested base by itself. ``--weights imagenet`` (the
default) needs Keras' ImageNet weights file; when it cannot be loaded the
script says so loudly and goes on with random weights.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_smalldata.data import demo_dataset  # noqa: E402
from keras_smalldata.pretrained import add_classifier_head, pretrained_base_or_random  # noqa: E402
from keras_smalldata.training import small_convnet  # noqa: E402
from keras_smalldata.viz import (  # noqa: E402
    filter_patterns,
    get_activations,
    grad_cam,
    layer_paths,
    plot_activations,
    plot_filter_patterns,
    plot_grad_cam,
    plot_misclassified,
)


def build_pretrained(architecture: str, weights, image_size: int) -> keras.Model:
    """A frozen `PretrainedBase` with the seeds' head; random weights if offline."""
    shape = (image_size, image_size, 3)
    base, _ = pretrained_base_or_random(architecture, weights, input_shape=shape)
    base.freeze()
    inputs = keras.Input(shape)
    return keras.Model(inputs, add_classifier_head(base(inputs)), name=f"{architecture}_classifier")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with train/, validation/, test/ class folders (default: demo data)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/visualization"))
    parser.add_argument("--model", type=Path, default=None,
                        help="a saved .keras model to look at instead of training one")
    parser.add_argument("--pretrained", default=None, help="e.g. vgg16: a PretrainedBase + head")
    parser.add_argument("--weights", default="imagenet",
                        help="with --pretrained: 'imagenet' (default), 'none' or a weights file")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--filters", type=int, default=16, help="filter patterns to draw")
    parser.add_argument("--steps", type=int, default=30, help="gradient-ascent steps per pattern")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights

    keras.utils.set_random_seed(args.seed)
    data_dir = args.data_dir or demo_dataset(image_size=args.image_size)
    size = (args.image_size, args.image_size)

    def load(split, shuffle):
        return keras.utils.image_dataset_from_directory(
            data_dir / split, image_size=size, batch_size=16, label_mode="binary",
            shuffle=shuffle, seed=args.seed)

    train, validation, test = load("train", True), load("validation", False), load("test", False)
    class_names = train.class_names
    output_dir = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    # --8<-- [start:model]
    if args.model is not None:
        model = keras.models.load_model(args.model)
    else:
        if args.pretrained:
            model = build_pretrained(args.pretrained, weights, args.image_size)
            optimizer = keras.optimizers.RMSprop(2e-5)
        else:
            # Three Conv/MaxPool blocks named conv1/pool1 ... conv3/pool3.
            model = small_convnet((args.image_size, args.image_size, 3),
                                  filters=(32, 64, 128), dense_units=None)
            optimizer = keras.optimizers.RMSprop(1e-3)
        model.compile(optimizer, "binary_crossentropy", metrics=["accuracy"])
        model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(test, verbose=0)
    print(f"test accuracy {accuracy:.3f} ({class_names[0]} = 0, {class_names[1]} = 1)")
    # --8<-- [end:model]

    batches = list(test)  # the whole test split (a few dozen pictures here)
    pictures = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy()[:, 0] for _, y in batches]).astype(int)
    figures = {}

    # --8<-- [start:activations]
    conv_layers = [p for p in layer_paths(model)
                   if isinstance(_layer(model, p), keras.layers.Conv2D)]
    shown = conv_layers[:3]
    activations = get_activations(model, pictures[:1], layers=shown)
    for path, figure in zip(shown, plot_activations(activations)):
        name = f"activations_{path.replace('/', '_')}.png"
        figure.savefig(output_dir / name, dpi=80)
        figures[name] = figure
        print(f"{path}: activations of shape {activations[path].shape[1:]}")
    # --8<-- [end:activations]

    # --8<-- [start:filters]
    layer = conv_layers[min(1, len(conv_layers) - 1)]
    patterns = filter_patterns(model, layer, filters=range(args.filters), steps=args.steps,
                               seed=args.seed, verbose=0)
    figure = plot_filter_patterns(patterns, title=f"{layer}: filters 0-{args.filters - 1}")
    name = f"filters_{layer.replace('/', '_')}.png"
    figure.savefig(output_dir / name, dpi=80)
    figures[name] = figure
    # --8<-- [end:filters]

    # --8<-- [start:grad_cam]
    chosen = _one_picture_per_class(labels, per_class=2)
    # Evidence for each picture's predicted class...
    figure = plot_grad_cam(model, pictures[chosen], class_names=class_names)
    figure.savefig(output_dir / "grad_cam.png", dpi=80)
    figures["grad_cam.png"] = figure
    # ...and, for the single sigmoid unit, for class 0 and for class 1 explicitly.
    for class_index in (0, 1):
        heatmaps = grad_cam(model, pictures[chosen], class_index=class_index)
        print(f"Grad-CAM for {class_names[class_index]!r}: heatmaps {heatmaps.shape}, "
              f"mean heat {heatmaps.mean():.3f}")
    figure = plot_grad_cam(model, pictures[chosen], class_index=1, class_names=class_names)
    figure.savefig(output_dir / f"grad_cam_{class_names[1]}.png", dpi=80)
    figures[f"grad_cam_{class_names[1]}.png"] = figure
    # --8<-- [end:grad_cam]

    # --8<-- [start:mistakes]
    held_out = validation.concatenate(test)  # every picture the model did not train on
    figure = plot_misclassified(model, held_out, class_names=class_names, max_images=8,
                                show_heatmap=True)
    figure.savefig(output_dir / "misclassified.png", dpi=80)
    figures["misclassified.png"] = figure
    # --8<-- [end:mistakes]

    print(f"figures in {output_dir}: {sorted(figures)}")
    return {"test_accuracy": accuracy, "figures": sorted(figures)}


def _layer(model: keras.Model, path: str):
    """The layer at a path such as 'vgg16/block5_conv3' (nested models)."""
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def _one_picture_per_class(labels: np.ndarray, per_class: int) -> list[int]:
    chosen = []
    for value in np.unique(labels):
        chosen += [int(i) for i in np.flatnonzero(labels == value)[:per_class]]
    return chosen


if __name__ == "__main__":
    main()
