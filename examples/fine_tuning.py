# %% [markdown]
# # 4. Fine-tuning the top of a pretrained network
#
# Feature extraction (tutorial 3) keeps the whole pretrained base frozen. Fine-tuning
# goes one step further: once a head has been trained on the frozen base, unfreeze
# the *last* block of the base and train it together with the head, with a very low
# learning rate, so that the most abstract features adapt to your pictures. The
# recipe has two phases and three traps: forgetting to compile again after changing
# what is trainable, a learning rate that wrecks the pretrained weights, and
# BatchNormalization layers that re-learn their statistics from a few dozen
# pictures. `ks.PretrainedBase` removes the traps.
#
# This page runs the recipe on the demo data with real ImageNet weights
# (MobileNetV2's), with data augmentation in front of the base. It is the script
# `examples/fine_tuning.py`, run top to bottom; every number and figure comes from
# that run, which prints the weights it used.

# %%
import argparse
import os
import warnings
from pathlib import Path

import keras_smalldata as ks

# %% [markdown]
# ## Settings

# %%
DATA_DIR = None  # None: the demo data; or a folder with train/, validation/, test/
OUTPUT_DIR = Path("outputs/fine_tuning")
ARCHITECTURE = "mobilenet_v2"
WEIGHTS = "imagenet"  # or the path of a weights file, or None for random weights
IMAGE_SIZE = 96  # pixels per side
EPOCHS = 15  # for each of the two phases
SEED = 42

parser = argparse.ArgumentParser(
    description="Tutorial 4: fine-tuning the top of a pretrained base.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
parser.add_argument("--architecture", default=ARCHITECTURE)
parser.add_argument("--weights", default=WEIGHTS, help="'imagenet', 'none' or a path")
parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
parser.add_argument("--epochs", type=int, default=EPOCHS)
parser.add_argument("--seed", type=int, default=SEED)
parser.add_argument(
    "--quick",
    action="store_true",
    default=os.environ.get("KERAS_SMALLDATA_QUICK") == "1",
    help="32 px pictures, 1 epoch per phase: a smoke test",
)
args, _ = parser.parse_known_args()
DATA_DIR, OUTPUT_DIR, SEED = args.data_dir, args.output_dir, args.seed
ARCHITECTURE = args.architecture
WEIGHTS = None if args.weights.lower() == "none" else args.weights
IMAGE_SIZE, EPOCHS = (32, 1) if args.quick else (args.image_size, args.epochs)

# %%
keras = ks.import_keras_quietly()
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
keras.utils.set_random_seed(SEED)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
data_dir = DATA_DIR or ks.demo_dataset(image_size=IMAGE_SIZE)


def load(split, shuffle):
    return keras.utils.image_dataset_from_directory(
        data_dir / split, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=16,
        label_mode="binary", shuffle=shuffle, seed=SEED, verbose=False,
    )


train = load("train", shuffle=True)
validation = load("validation", shuffle=False)
test = load("test", shuffle=False)

# %% [markdown]
# ## The model: augmentation, the base, a head
#
# The base takes pictures in 0-255 with its own preprocessing inside (tutorial 3).
# The augmentation comes first, in the model: random in `fit`, the identity in
# `evaluate` and `predict`. The head is the classic `Flatten -> Dense(256) ->
# Dropout(0.5) -> Dense(1, sigmoid)`.

# %%
shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
base, weights = ks.pretrained_base_or_random(ARCHITECTURE, WEIGHTS, input_shape=shape)
print(f"{base.name}: weights: {weights}")
inputs = keras.Input(shape)
x = ks.augmentation_preset("flip_rotate_zoom", seed=SEED)(inputs)
outputs = ks.add_classifier_head(base(x))
model = keras.Model(inputs, outputs)

# %% [markdown]
# ## Phase 1: train the head on the frozen base
#
# `base.freeze()` makes every layer of the base non-trainable. Keras reads the
# `trainable` flags when a model is compiled, so freezing comes before `compile`.
# `trainable_summary()` shows what will train: here only the head.
#
# BatchNormalization: a frozen Keras 3 BatchNormalization layer runs in inference
# mode, with the statistics it learnt on ImageNet. A `PretrainedBase` with ImageNet
# weights keeps its BatchNormalization layers frozen even when the rest of the base
# is unfrozen later (`train_batchnorm=False`, the default for pretrained weights), so
# fine-tuning on a few dozen pictures per batch cannot wreck those statistics.

# %%
base.freeze()
print(base.trainable_summary())
model.compile(
    keras.optimizers.RMSprop(1e-4), "binary_crossentropy", metrics=["accuracy"]
)
head_phase = model.fit(train, validation_data=validation, epochs=EPOCHS, verbose=0)
_, head_accuracy = model.evaluate(test, verbose=0)
print(f"phase 1, frozen base: test accuracy {head_accuracy:.3f}")

# %%
figure = ks.plot_history(head_phase)
figure.savefig(OUTPUT_DIR / "frozen_base.png", dpi=100)
figure

# %% [markdown]
# ## Phase 2: unfreeze the last block, with a low learning rate
#
# `unfreeze_last_block` trains the base's last block only: for MobileNetV2 its
# last inverted-residual block, `block_16` (`freeze_until("block_16_expand")`); for
# VGG16 `block5` (`freeze_until("block5_conv1")`, the classic recipe). With
# `recompile=model` the model is compiled again, with its own loss and metrics and
# the optimizer given, so the change takes effect. The learning rate is ten times
# lower than in phase 1: large updates would destroy what the block learnt on
# ImageNet before the head's gradients are meaningful.

# %%
base.unfreeze_last_block(recompile=model, optimizer=keras.optimizers.RMSprop(1e-5))
print(base.trainable_summary())
tuning_phase = model.fit(train, validation_data=validation, epochs=EPOCHS, verbose=0)
_, tuned_accuracy = model.evaluate(test, verbose=0)
print(f"phase 2, last block fine-tuned: test accuracy {tuned_accuracy:.3f}")

# %%
figure = ks.plot_history(tuning_phase)
figure.savefig(OUTPUT_DIR / "fine_tuning.png", dpi=100)
figure

# %% [markdown]
# On the demo data the frozen base already separates faces from other patches
# almost perfectly, so fine-tuning has little left to add; on harder data (dogs vs.
# cats, your microscope slides) it is where the last points of accuracy come from.
# Compare the validation loss of the two phases rather than the accuracy: with 40
# test pictures, one picture is 2.5 points. The learning-quality benchmark page
# measures what each step of the recipe buys at several training sizes.
#
# ## The classic recipe: VGG16 from `block5_conv1`
#
# The classic recipe fine-tunes VGG16's fifth block on dogs vs. cats with
# `RMSprop(1e-5)` (about 97% test accuracy on 2,000 training pictures). It is the
# same code with another architecture and an explicit boundary; it needs VGG16's
# ImageNet weights, which Keras downloads on first use (this page ran offline, with
# MobileNetV2's, so this part is shown, not run):
#
# ```python
# base = ks.PretrainedBase("vgg16", input_shape=(150, 150, 3), weights="imagenet")
# ...  # model and phase 1 as above
# base.freeze_until("block5_conv1", recompile=model,
#                   optimizer=keras.optimizers.RMSprop(1e-5))
# print(base.trainable_summary())  # block5's 3 convolutions and the head train
# ```
