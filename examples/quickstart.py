# %% [markdown]
# # 1. A small convnet from scratch
#
# The first step of the small-data recipe is a baseline: a small convnet trained from
# scratch on your pictures, with nothing borrowed from ImageNet. It tells you how hard
# the task is, and its curves show the problem every later tutorial fights: with a
# few hundred pictures the model learns the training set by heart long before it
# stops improving on new pictures.
#
# This page is a script, `examples/quickstart.py`, and a notebook: run it top to
# bottom in either form. It runs offline on the demo data in about a minute on two
# CPU cores. Every number and figure below comes from one run of it.

# %%
import argparse
import os
import warnings
from pathlib import Path

import keras_smalldata as ks

# %% [markdown]
# ## Settings
#
# Plain constants: change them here. `DATA_DIR = None` uses the demo data; point it
# at your own folder with `train/` and `validation/` class folders (for the classic
# dogs vs. cats subsets, `IMAGE_SIZE = 150`).

# %%
DATA_DIR = None
OUTPUT_DIR = Path("outputs/quickstart")
IMAGE_SIZE = 64  # pixels per side
EPOCHS = 30
SEED = 42

# %% [markdown]
# Run as a script, the command line can override these settings
# (`python examples/quickstart.py --help` lists them). `--quick` (or
# `KERAS_SMALLDATA_QUICK=1`) is the tiny run the test suite makes: it checks that
# the code runs, not what it learns. In a notebook this cell changes nothing.

# %%
parser = argparse.ArgumentParser(
    description="Tutorial 1: a small convnet from scratch.",
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
# Keras comes next. `ks.import_keras_quietly()` is `import keras` without the C++
# start-up lines TensorFlow 2.21 prints even when `TF_CPP_MIN_LOG_LEVEL` asks it not
# to; the warnings filter hides the notice Keras 3.15 gives on every `fit` of a
# `tf.data` dataset (our datasets shuffle themselves).

# %%
keras = ks.import_keras_quietly()
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
keras.utils.set_random_seed(SEED)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The data: class folders
#
# Keras reads a folder of class folders with `keras.utils.image_dataset_from_directory`:
# one sub-folder per class, the class names sorted alphabetically become labels 0, 1,
# and so on. The demo dataset, real faces from Labeled Faces in the Wild against
# non-face patches shipped with scikit-image, is written in that layout by
# `ks.demo_dataset`: 60 training, 20 validation and 20 test pictures per class. For
# the classic dogs vs. cats subsets, `ks.make_subsets` builds the same layout from
# Kaggle's flat folder, and `ks.verify_images` finds the files the loader would
# choke on.

# %%
data_dir = DATA_DIR or ks.demo_dataset(image_size=IMAGE_SIZE)
size = (IMAGE_SIZE, IMAGE_SIZE)
train = keras.utils.image_dataset_from_directory(
    data_dir / "train", image_size=size, batch_size=16, label_mode="binary", seed=SEED
)
validation = keras.utils.image_dataset_from_directory(
    data_dir / "validation", image_size=size, batch_size=16, label_mode="binary"
)
images, labels = next(iter(train))
print(train.class_names, tuple(images.shape), images.dtype.name, tuple(labels.shape))
pixels = images.numpy()
print("pixel values from", pixels.min(), "to", pixels.max())

# %% [markdown]
# `label_mode="binary"` gives float labels of shape `(batch, 1)`, what one sigmoid
# output with `binary_crossentropy` expects. The pictures come as `float32` in
# [0, 255]: rescaling is the model's job, so that the saved model takes pictures as
# they come.
#
# ## The model
#
# The classic first model: `Rescaling(1/255)`, four blocks of `Conv2D` +
# `MaxPooling2D` whose filters grow (32, 64, 128, 128) while the maps shrink, then
# `Flatten`, `Dropout(0.5)` and a dense classifier with one sigmoid unit.
# `ks.small_convnet` builds it, with stable layer names that the visualisation
# functions of tutorial 5 use.

# %%
model = ks.small_convnet((IMAGE_SIZE, IMAGE_SIZE, 3))
print([layer.name for layer in model.layers])
print(f"{model.count_params():,} parameters")

# %% [markdown]
# ## Training, with a smoothed trend
#
# Validation curves over a few dozen pictures are noisy. The `ks.CurveSmoothing`
# callback adds an exponentially smoothed copy of every metric to the logs at each
# epoch end (`val_loss_smoothed`...), so the callbacks after it in the list can
# watch the trend. The smoothed curve lags behind the raw one, which is why the
# checkpoint keeps the best *raw* epoch. `ks.check_callbacks` checks the list before
# training starts (a monitor on a smoothed key that will never exist is an error).

# %%
model.compile(
    optimizer=keras.optimizers.RMSprop(1e-4),
    loss="binary_crossentropy",
    metrics=["accuracy"],
)
callbacks = ks.check_callbacks(
    [
        ks.CurveSmoothing(factor=0.8),
        keras.callbacks.ModelCheckpoint(
            OUTPUT_DIR / "best.keras", monitor="val_loss", save_best_only=True
        ),
    ]
)
history = model.fit(
    train, validation_data=validation, epochs=EPOCHS, callbacks=callbacks, verbose=0
)
val_loss = history.history["val_loss"]
best = val_loss.index(min(val_loss))
print(f"{len(val_loss)} epochs; lowest validation loss {val_loss[best]:.3f} at epoch "
      f"{best + 1}, validation accuracy there "
      f"{history.history['val_accuracy'][best]:.3f}")
print(f"last epoch: training loss {history.history['loss'][-1]:.3f}, "
      f"validation loss {val_loss[-1]:.3f}")

# %% [markdown]
# ## Reading the curves
#
# `ks.plot_history` draws one panel per metric: raw values as points, the smoothed
# trend as a line, and the epoch with the lowest validation loss (the one the
# checkpoint kept) marked in every panel. It returns a matplotlib figure; the last
# line of the cell shows it in a notebook and does nothing in a script.

# %%
figure = ks.plot_history(history)
figure.savefig(OUTPUT_DIR / "curves.png", dpi=100)
print("figure written to", OUTPUT_DIR / "curves.png")
ks.save_history(history, OUTPUT_DIR / "history.json")
figure

# %% [markdown]
# With 40 validation pictures, one picture is 2.5 points of accuracy, so the raw
# validation points jump from one epoch to the next and only the smoothed line shows
# the trend. Look at the gap rather than the best point: by the last epochs the
# training loss is well below the validation loss, and training accuracy runs ahead
# of validation accuracy. The model is starting to memorise its few training
# pictures; trained longer, the validation loss stops following the training loss
# down: the classic overfitting curves. The three remedies follow: data augmentation
# (tutorial 2), features from a pretrained network (tutorial 3) and fine-tuning
# (tutorial 4).
