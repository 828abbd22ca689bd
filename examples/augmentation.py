# %% [markdown]
# # 2. Fighting overfitting with data augmentation
#
# Tutorial 1 ended with the problem every small dataset has: the model keeps getting
# better on its training pictures while the validation curves stall. With a few
# hundred pictures the network learns them by heart. More pictures would help; data
# augmentation is the cheap substitute. Every epoch, the model sees each training
# picture randomly rotated, shifted, zoomed and flipped, so there is no fixed set of
# pictures to memorise. `Dropout(0.5)` before the dense layers helps the same way,
# by not letting the classifier rely on any single feature.
#
# This page trains the same small convnet twice, from the same initial weights:
#
# - **plain**: the bare convnet, without augmentation or dropout;
# - **augmented**: the classic `ImageDataGenerator` settings as one augmentation
#   layer in front of it, plus `Dropout(0.5)`.
#
# The page is the script `examples/augmentation.py`, run top to bottom; every number
# and figure below comes from that run.

# %%
import argparse
import os
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import keras_smalldata as ks

# %% [markdown]
# ## Settings
#
# `DATA_DIR = None` uses the demo data (faces against other patches); point it at
# your own folder with `train/` and `validation/` class folders. The command line can
# override the settings when the file runs as a script (`--help` lists them;
# `--quick` is the test suite's smoke run).

# %%
DATA_DIR = None
OUTPUT_DIR = Path("outputs/augmentation")
IMAGE_SIZE = 64  # pixels per side
EPOCHS = 40  # for each of the two runs
SEED = 42

parser = argparse.ArgumentParser(
    description="Tutorial 2: the small convnet without and with data augmentation.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                    help="folder of train/, validation/, test/; None: the demo task")
parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR,
                    help="where the figures and files go")
parser.add_argument("--image-size", type=int, default=IMAGE_SIZE,
                    help="side of the square pictures, in pixels")
parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
parser.add_argument("--seed", type=int, default=SEED, help="seed of every random draw")
parser.add_argument(
    "--quick",
    action="store_true",
    default=os.environ.get("KERAS_SMALLDATA_QUICK") == "1",
    help="32 px pictures, 1 epoch: a smoke test",
)
args, _ = parser.parse_known_args()
DATA_DIR, OUTPUT_DIR, SEED = args.data_dir, args.output_dir, args.seed
IMAGE_SIZE, EPOCHS = (32, 1) if args.quick else (args.image_size, args.epochs)

# %% [markdown]
# Keras without TensorFlow's C++ start-up lines (see tutorial 1), and the data as in
# tutorial 1.

# %%
keras = ks.import_keras_quietly()
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

data_dir = DATA_DIR or ks.demo_dataset(image_size=IMAGE_SIZE)
size = (IMAGE_SIZE, IMAGE_SIZE)
train = keras.utils.image_dataset_from_directory(
    data_dir / "train", image_size=size, batch_size=16, label_mode="binary", seed=SEED
)
validation = keras.utils.image_dataset_from_directory(
    data_dir / "validation", image_size=size, batch_size=16, label_mode="binary"
)

# %% [markdown]
# ## From `ImageDataGenerator` to a layer
#
# Keras 2 augmented with a generator that also loaded the pictures:
#
# ```python
# # Keras 2
# train_datagen = ImageDataGenerator(
#     rescale=1./255, rotation_range=40, width_shift_range=0.2,
#     height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
#     horizontal_flip=True, fill_mode="nearest")
# train_generator = train_datagen.flow_from_directory(
#     train_dir, target_size=(150, 150), batch_size=32, class_mode="binary")
# ```
#
# Keras 3 has no `ImageDataGenerator`. Loading becomes
# `keras.utils.image_dataset_from_directory`, `rescale=1./255` becomes the model's
# `Rescaling` layer, and the augmentation arguments go, unchanged and with their
# exact meaning, to `ks.from_image_data_generator`, which returns one Keras layer.
# (`ks.augmentation_preset("image_data_generator")` is the same layer.)
#
# | argument | what the layer does (the generator's meaning) |
# | --- | --- |
# | `rotation_range=40` | an angle drawn in [-40, 40] **degrees** per picture |
# | `width_shift_range=0.2` | a horizontal shift of up to 20% of the width |
# | `height_shift_range=0.2` | a vertical shift of up to 20% of the height |
# | `shear_range=0.2` | a shear of up to 0.2 **degrees**: almost none |
# | `zoom_range=0.2` | x and y zoom factors drawn independently in [0.8, 1.2] |
# | `horizontal_flip=True` | a left-right flip with probability 0.5 |
# | `fill_mode="nearest"` | uncovered areas repeat the nearest edge pixel |
#
# Two things differ from the generator, on purpose: the augmentation is a layer of
# the model (random in `fit`, the identity in `evaluate` and `predict`, saved with
# the model), and rotation, shifts, shear and zoom are one matrix and one
# interpolation pass, where a chain of Keras' `RandomRotation`, `RandomZoom`...
# layers resamples once per layer (blurrier, and slower: see the augmentation
# benchmark).

# %%
augmentation = ks.from_image_data_generator(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,  # degrees, as it always was
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
    seed=SEED,
    name="augmentation",
)
print(augmentation.layers)

# %% [markdown]
# ## Look before you train
#
# Always look at what an augmentation does to your pictures before training with
# it: a transformation that makes a picture unrecognisable teaches the model
# nothing. `ks.show_augmentations` calls the layer in training mode on one picture
# and draws a grid.

# %%
images, labels = next(iter(train))
face = images[int(np.argmin(labels[:, 0]))]  # a face (class 0) from the first batch
figure = ks.show_augmentations(
    augmentation, face, num_images=8, include_original=True, value_range=(0, 255)
)
figure.savefig(OUTPUT_DIR / "augmentations.png", dpi=100)
figure

# %% [markdown]
# Rotations of up to 40 degrees, shifts, zooms and flips; the streaks at the
# borders are `fill_mode="nearest"` repeating the edge pixels into the areas the
# transformation uncovers. The shear is invisible: 0.2 degrees moves the top row of
# a 64-pixel picture by a tenth of a pixel. The layer keeps the generator's meaning
# so that the same numbers give the same augmentation; ask for `shear_range=10` if
# you want to see a shear.
#
# ## Two runs from the same start
#
# `ks.small_convnet` is tutorial 1's network. The plain run has no dropout; the
# augmented run puts the augmentation first, on the 0-255 pictures, and
# `Dropout(0.5)` before the dense layers. Neither adds weights, and both models start
# from the same initial values: Keras is seeded before each is built, and the seeded
# `Dropout` leaves the global random state alone.

# %%
runs = {
    "plain": {"dropout": 0.0},
    "augmented": {"augmentation": augmentation, "dropout": 0.5},
}
histories = {}
for name, options in runs.items():
    keras.utils.set_random_seed(SEED)
    model = ks.small_convnet((IMAGE_SIZE, IMAGE_SIZE, 3), seed=SEED, **options)
    model.compile(
        keras.optimizers.RMSprop(1e-4), "binary_crossentropy", metrics=["accuracy"]
    )
    history = model.fit(train, validation_data=validation, epochs=EPOCHS, verbose=0)
    histories[name] = history.history
    best = max(history.history["val_accuracy"])
    loss = np.mean(history.history["loss"][-5:])
    val_loss = np.mean(history.history["val_loss"][-5:])
    print(f"{name:>9}: best validation accuracy {best:.3f}; mean of the last 5 "
          f"epochs: training loss {loss:.3f}, validation loss {val_loss:.3f}")

# %% [markdown]
# ## The curves
#
# Without augmentation, the curves show tutorial 1's overfitting, faster (there is
# no dropout here): the training loss keeps falling toward zero while the
# validation loss stops following it.

# %%
figure = ks.plot_history(histories["plain"])
figure.savefig(OUTPUT_DIR / "curves_plain.png", dpi=100)
figure

# %% [markdown]
# With augmentation and dropout, the training loss falls more slowly (every epoch
# brings new variants of the pictures, so there is nothing fixed to memorise) and
# the validation loss follows it down: the gap between the two curves is the
# overfitting that augmentation removed.

# %%
figure = ks.plot_history(histories["augmented"])
figure.savefig(OUTPUT_DIR / "curves_augmented.png", dpi=100)
figure

# %% [markdown]
# ## Beyond one picture at a time: MixUp, CutMix and RandAugment
#
# Keras has three more augmentations built in that small-data practitioners reach
# for, and keras-smalldata gives them ready to use:
#
# - **MixUp** (Zhang et al., 2018) blends each picture with another one of the batch,
#   `l * a + (1 - l) * b`, and **CutMix** (Yun et al., 2019) pastes a rectangle of
#   another picture into it. Both mix the labels with the same draw, so they need
#   the labels: `ks.mixing_augmentation` goes in the input pipeline, after `batch`,
#   on the training data only. The labels come out soft: train on them with
#   `binary_crossentropy` (one sigmoid unit, as here) or `categorical_crossentropy`
#   (a softmax head), never a sparse loss.
# - **RandAugment** (Cubuk et al., 2020) applies a few operations drawn from a fixed
#   list (contrast, solarize, shear...) at a given strength:
#   `ks.augmentation_preset("rand_augment")`, a layer like the others (the
#   augmentation guide says what to know about Keras' layer on each backend).

# %%
mixing = ks.mixing_augmentation("mixup_or_cutmix", label_mode="binary", seed=SEED)
mixed, soft_labels = next(iter(train.map(mixing)))  # in tf.data, on every backend
figure = Figure(figsize=(8, 2.3), layout="constrained")
for index, ax in enumerate(figure.subplots(1, 6)):
    ax.imshow(np.clip(np.asarray(mixed[index]), 0, 255).astype("uint8"))
    share = float(np.asarray(soft_labels[index]).ravel()[0])
    ax.set_title(f"{train.class_names[1]}: {share:.2f}", fontsize=8)
    ax.axis("off")
figure.savefig(OUTPUT_DIR / "mixing.png", dpi=100)
figure

# %% [markdown]
# Each title is the mixed label: the share of `not_faces` in the picture. In a
# training pipeline, `train.map(mixing)` as here, then `fit`. The learning-quality
# benchmark page measures what MixUp adds to the fine-tuning recipe on a hard task.

# %% [markdown]
# With 40 validation pictures one picture is 2.5 points of accuracy, so compare the
# losses and the shape of the curves rather than one best point; on another machine
# or with another seed the numbers differ. The next two tutorials borrow what a
# network learnt on ImageNet instead of learning everything from 120 pictures.
