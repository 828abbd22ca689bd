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
import re
import warnings
from pathlib import Path

from matplotlib.figure import Figure

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
# "Beyond the classic recipe":
LAYER_DECAY = 0.7  # each block's learning rate, relative to the block above it
HEAD_MULTIPLIER = 10.0  # the head's learning rate, relative to the last block's
GRADUAL_BLOCKS = 5  # blocks that gradual unfreezing lets train, from the top

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
    help="32 px pictures, 1 epoch per phase, random weights: a smoke test",
)
args, _ = parser.parse_known_args()
DATA_DIR, OUTPUT_DIR, SEED = args.data_dir, args.output_dir, args.seed
ARCHITECTURE = args.architecture
WEIGHTS = None if args.weights.lower() == "none" else args.weights
IMAGE_SIZE, EPOCHS = args.image_size, args.epochs
if args.quick:
    IMAGE_SIZE, EPOCHS, WEIGHTS = 32, 1, None

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
base, weights = ks.pretrained_base_or_random(
    ARCHITECTURE, WEIGHTS, input_shape=shape,
    train_batchnorm=False,  # the default with ImageNet weights; random ones too
)
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
first_phase = model.get_weights()  # for "Beyond the classic recipe", at the end
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

# %% [markdown]
# ## Beyond the classic recipe
#
# The classic recipe trains one block with one low learning rate. Two refinements
# from the literature go further, and both are in keras-smalldata:
#
# - **Discriminative learning rates** (ULMFiT: Howard & Ruder, 2018, "Universal
#   Language Model Fine-tuning for Text Classification"): each block gets its own
#   learning rate, lower for the first, generic blocks than for the last, specific
#   ones, and the new head the highest. timm's `layer_decay`, the usual way to
#   fine-tune vision transformers such as BEiT and MAE's, gives the last block the
#   base rate and each block below it `decay` times less.
#   `ks.DiscriminativeOptimizer` wraps any Keras optimizer to do this.
# - **Gradual unfreezing** (ULMFiT): after the head, the last block trains, then
#   one more block every few epochs, from the top down, so that a block starts to
#   move only once the layers above it have settled. `ks.GradualUnfreezing` is a
#   callback that does it within one `fit`, without compiling again.
#
# To compare them with the classic second phase on equal terms, each starts from
# the weights the model had after phase 1 (kept in `first_phase`) and gets the
# same number of epochs as phase 2.

# %%
second_phases = {"last block, one learning rate": tuning_phase.history["val_loss"]}
print(f"last block, one learning rate: test accuracy {tuned_accuracy:.3f}, "
      f"lowest validation loss {min(tuning_phase.history['val_loss']):.3g}")


def second_phase(name, callbacks=()):
    """Trains the model as now compiled, records its validation loss, reports."""
    history = model.fit(
        train, validation_data=validation, epochs=EPOCHS, verbose=0,
        callbacks=list(callbacks),
    )
    second_phases[name] = history.history["val_loss"]
    _, accuracy = model.evaluate(test, verbose=0)
    print(f"{name}: test accuracy {accuracy:.3f}, "
          f"lowest validation loss {min(history.history['val_loss']):.3g}")


# %% [markdown]
# ### Learning rates per block
#
# The whole base trains, its last block at the classic rate (`1e-5`), each block
# below it `LAYER_DECAY` times slower, and the head `HEAD_MULTIPLIER` times faster.
# `layer_decay` runs over the base's blocks (`ks.block_groups(base)`: MobileNetV2's
# stem, `expanded_conv` and `block_1` to `block_16`); `multipliers` names other
# groups by layer name, block name or regular expression. The optimizer steps as
# the wrapped `RMSprop` would, each weight's step times its group's multiplier,
# which for RMSprop, SGD, Adam... is exactly a learning rate per group. Frozen
# layers stay frozen: the BatchNormalization layers still run in inference mode.
# `describe()` shows the groups (their weights include the BatchNormalization
# statistics, which never train):

# %%
model.set_weights(first_phase)
optimizer = ks.DiscriminativeOptimizer(
    keras.optimizers.RMSprop(1e-5), model, layer_decay=LAYER_DECAY,
    multipliers={re.compile("head_.*"): HEAD_MULTIPLIER},
)
base.unfreeze(recompile=model, optimizer=optimizer)
print(optimizer.describe())
second_phase("whole base, learning rates per block")

# %% [markdown]
# ### Gradual unfreezing
#
# `freeze_until` chooses the lowest block that may ever train (here the
# `GRADUAL_BLOCKS` last ones); `GradualUnfreezing` lets them train one after the
# other, the last one from the first epoch (`initial_blocks=1`). The blocks that
# wait stay trainable for Keras, with a multiplier of 0 in the
# `DiscriminativeOptimizer`, so their weights do not move until their epoch; that
# is why the model is compiled once, with that optimizer, and why this works the
# same on TensorFlow, JAX and PyTorch.

# %%
model.set_weights(first_phase)
lowest_block, lowest_layers = ks.block_groups(base)[-GRADUAL_BLOCKS]
base.freeze_until(
    lowest_layers[0], recompile=model,
    optimizer=ks.DiscriminativeOptimizer(keras.optimizers.RMSprop(1e-5), model),
)
unfreezing = ks.GradualUnfreezing(
    base, every=max(1, EPOCHS // GRADUAL_BLOCKS), initial_blocks=1
)
print("unfreezing order:", unfreezing.unfreezing_order())
second_phase("gradual unfreezing", [unfreezing])

# %%
figure = Figure(figsize=(7, 3.6), layout="constrained")
ax = figure.add_subplot()
for name, losses in second_phases.items():
    ax.plot(range(1, len(losses) + 1), losses, marker="o", label=name)
ax.set_xlabel("epoch of the second phase")
ax.set_ylabel("validation loss")
ax.set_yscale("log")
ax.legend()
figure.savefig(OUTPUT_DIR / "second_phases.png", dpi=100)
figure

# %% [markdown]
# ### When to use which
#
# - **The classic recipe** (the last block, one low rate) is the place to start
#   with a few hundred pictures that look like ImageNet's: it is the cheapest
#   (gradients reach only the last block) and has one rate to choose.
# - **Learning rates per block** pay off when more than the last block has to
#   adapt: more pictures, or pictures unlike ImageNet (microscopy, X-rays,
#   satellite views), where the middle blocks must move too but the first, generic
#   ones should barely change. Gradients then reach the whole base: each step costs
#   more.
# - **Gradual unfreezing** protects the lower blocks from the large first
#   gradients of a new head, and suits long fine-tuning runs where each block gets
#   several epochs. ULMFiT uses both together: pass `layer_decay=` to the
#   `DiscriminativeOptimizer` that `GradualUnfreezing` works with.
#
# The evidence for both comes from larger data than ours: ULMFiT's ablations on
# text classification, and layer decay in the fine-tuning of vision transformers.
# On the demo data, where the frozen base already separates faces from other
# patches almost perfectly, there is little left for any second phase to gain;
# the learning-quality benchmark page measures all three at several training
# sizes and seeds.
