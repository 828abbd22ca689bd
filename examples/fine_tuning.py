# %% [markdown]
# # 4. Fine-tuning where ImageNet features fall short
#
# Feature extraction (tutorial 3) keeps the whole pretrained base frozen, and on
# pictures that look like ImageNet's that is often enough. This page takes a task
# where it is not: Fashion-MNIST's four upper-body classes (T-shirt/top, pullover,
# coat, shirt), small grey product photos that ImageNet features barely tell apart
# (logistic regression on frozen MobileNetV2 features reaches about 0.71 with 100
# training pictures per class, and raw pixels 0.66). It is the situation of anyone
# with X-rays, microscope slides or product photos, and there fine-tuning has to
# earn its place.
#
# We train on 100 pictures per class, choose nothing on the 1,000 test pictures,
# and measure each step: the head on the frozen base, the classic second phase
# (the last block at a very low rate), then the recipe keras-smalldata recommends:
# the **whole** base with AdamW under a one-cycle schedule, a learning rate chosen
# with a range test, a check that the run did not collapse, and test-time
# augmentation. The page is the script `examples/fine_tuning.py`, run top to
# bottom on real ImageNet weights (MobileNetV2's); every number and figure comes
# from that run.

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
# The recipe's settings (the picture size, the rates, the number of epochs, the
# augmentation) were chosen on validation pictures drawn from Fashion-MNIST's training
# split, never on the test split (the learning-quality benchmark page says how), and
# they are the same at every training size.

# %%
DATA_DIR = None  # None: the hard demo task; or a folder with train/, validation/, test/
OUTPUT_DIR = Path("outputs/fine_tuning")
WEIGHTS = "imagenet"  # or the path of a weights file, or None for random weights
IMAGE_SIZE = 96  # pixels per side (Fashion-MNIST's 28 px pictures are upscaled)
SPLITS = (100, 50, 250)  # train, validation and test pictures per class
HEAD_EPOCHS = 5  # phase 1: the head on the frozen base
EPOCHS = 30  # phase 2
RATE = 3e-4  # phase 2's peak learning rate (AdamW, one cycle)
SEED = 42

parser = argparse.ArgumentParser(
    description="Tutorial 4: fine-tuning where ImageNet features fall short.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                    help="folder of train/, validation/, test/; None: the demo task")
parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR,
                    help="where the figures and files go")
parser.add_argument("--weights", default=WEIGHTS, help="'imagenet', 'none' or a path")
parser.add_argument("--image-size", type=int, default=IMAGE_SIZE,
                    help="side of the square pictures, in pixels")
parser.add_argument("--head-epochs", type=int, default=HEAD_EPOCHS,
                    help="epochs of the head on the frozen base")
parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
parser.add_argument("--rate", type=float, default=RATE,
                    help="peak learning rate of the whole-base phase")
parser.add_argument("--seed", type=int, default=SEED, help="seed of every random draw")
parser.add_argument(
    "--quick",
    action="store_true",
    default=os.environ.get("KERAS_SMALLDATA_QUICK") == "1",
    help="32 px, 1 epoch per phase, few pictures, random weights: a smoke test",
)
args, _ = parser.parse_known_args()
DATA_DIR, OUTPUT_DIR, SEED = args.data_dir, args.output_dir, args.seed
WEIGHTS = None if args.weights.lower() == "none" else args.weights
IMAGE_SIZE, HEAD_EPOCHS, EPOCHS = args.image_size, args.head_epochs, args.epochs
RATE = args.rate
if args.quick:
    IMAGE_SIZE, HEAD_EPOCHS, EPOCHS, WEIGHTS = 32, 1, 1, None
    SPLITS = (8, 4, 4)

# %%
keras = ks.import_keras_quietly()
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
keras.utils.set_random_seed(SEED)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
data_dir = DATA_DIR or ks.demo_dataset("fashion_tops", splits=SPLITS)


def load(split, shuffle):
    return keras.utils.image_dataset_from_directory(
        data_dir / split, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=32,
        label_mode="categorical", shuffle=shuffle, seed=SEED, verbose=False,
    )


train = load("train", shuffle=True)
validation = load("validation", shuffle=False)
test = load("test", shuffle=False)
class_names = train.class_names
test_pictures = np.concatenate([x for x, _ in test])
test_labels = np.concatenate([y for _, y in test]).argmax(axis=1)
print(f"classes: {class_names}")
print(f"{len(test_labels)} test pictures")

# %% [markdown]
# ## The model: augmentation, the base, a linear head
#
# The base takes pictures in 0-255 with its own preprocessing inside (tutorial 3),
# and `pooling="avg"` gives one vector per picture. In front of it, in the model,
# the augmentation: horizontal flips and shifts of up to a tenth of the side, in one
# fused pass (`ks.ImageDataGeneratorAugmentation`), random in `fit` and the identity
# in `evaluate` and `predict`. Clothes are left-right symmetric and centred, so
# flips and small shifts are safe; rotations and zooms did not help on validation.
# The head is one `Dense` layer giving logits, after a light dropout.
#
# The loss is categorical cross-entropy with label smoothing 0.1 (targets 0.925 and
# 0.025 instead of 1 and 0), which keeps a model trained on a few hundred pictures
# from becoming over-confident.

# %%
shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
base, weights = ks.pretrained_base_or_random(
    "mobilenet_v2", WEIGHTS, input_shape=shape, pooling="avg",
    train_batchnorm=False,  # the default with ImageNet weights; random ones too
)
print(f"{base.name}: weights: {weights}")
augmentation = ks.ImageDataGeneratorAugmentation(
    width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True,
    fill_mode="nearest", seed=SEED,
)
inputs = keras.Input(shape)
features = keras.layers.Dropout(0.2, seed=SEED)(base(augmentation(inputs)))
outputs = keras.layers.Dense(len(class_names), name="logits")(features)
model = keras.Model(inputs, outputs)
loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
steps = len(train)  # batches per epoch
results = {}


def test_accuracy(name):
    _, accuracy = model.evaluate(test, verbose=0)
    results[name] = accuracy
    print(f"{name}: test accuracy {accuracy:.3f}")


# %% [markdown]
# ## Phase 1: the head on the frozen base
#
# `base.freeze()` makes every layer of the base non-trainable; Keras reads the
# `trainable` flags when a model is compiled, so freezing comes before `compile`.
# This phase is feature extraction with augmentation: its accuracy is the bar that
# fine-tuning has to beat. `ks.OneCycle` is the learning-rate schedule used in both
# phases (more on it below).

# %%
base.freeze()
model.compile(
    keras.optimizers.AdamW(ks.OneCycle(1e-3, total_steps=HEAD_EPOCHS * steps)),
    loss, metrics=metrics,
)
model.fit(train, validation_data=validation, epochs=HEAD_EPOCHS, verbose=0)
first_phase = model.get_weights()  # every second phase below starts from here
test_accuracy("phase 1, frozen base")

# %% [markdown]
# Look at the augmentation before trusting it: a shirt from the test pictures as it
# is, then as the model sees it in training.

# %%
shirt = test_pictures[np.flatnonzero(test_labels == class_names.index("shirt"))[0]]
figure = ks.show_augmentations(
    augmentation, shirt, num_images=7, include_original=True, value_range=(0, 255)
)
figure.savefig(OUTPUT_DIR / "augmentations.png", dpi=100)
figure

# %% [markdown]
# ## The classic second phase: the last block, a very low rate
#
# The classic recipe unfreezes the base's last block only (for MobileNetV2
# `block_16`, for VGG16 `block5`: `freeze_until("block5_conv1")`) and trains it
# with `RMSprop(1e-5)`. With `recompile=model` the model is compiled again with its
# own loss and metrics, so the change takes effect. BatchNormalization layers stay
# frozen, in inference mode with ImageNet's statistics (`train_batchnorm=False`):
# re-learning them from batches of 32 pictures wrecks a pretrained network.

# %%
base.unfreeze_last_block(recompile=model, optimizer=keras.optimizers.RMSprop(1e-5))
classic = model.fit(train, validation_data=validation, epochs=EPOCHS, verbose=0)
test_accuracy("classic phase 2, last block")

# %% [markdown]
# On pictures this far from ImageNet, the last block at 1e-5 barely moves: the
# features that need to change are lower in the network, and the rate is too low to
# change anything in 30 epochs.
#
# ## The recipe: the whole base, a rate from a range test, one cycle
#
# The recipe fine-tunes the **whole** base (BatchNormalization still frozen) with a
# much higher rate than the classic one, which only works with two safeguards: a
# warm-up, so that the first large gradients do not wreck the pretrained weights,
# and a decay to almost zero at the end.
#
# **Which rate?** `ks.lr_range_test` runs one short training over exponentially
# growing rates (one per batch) and records the loss; the model's weights and the
# optimizer's state are restored afterwards. Its `suggestion` is where the smoothed
# loss falls fastest. Read the plot rather than the number: after a trained head the
# loss often stays flat over the small rates (the head already fits the pictures) and
# climbs once the rate is too large. On a flat curve the suggestion and the minimum
# fall anywhere on the flat part and mean little; the one-cycle peak belongs below
# the point where the climb starts. On this task a peak of 1e-3, where the climb
# starts, was as accurate on validation pictures as 3e-4 but collapsed in one run of
# several (the learning-quality page has the runs), so the recipe uses 3e-4.

# %%
model.set_weights(first_phase)
base.unfreeze(recompile=model, optimizer=keras.optimizers.AdamW(weight_decay=1e-4))
found = ks.lr_range_test(model, train, verbose=0)
# No suggestion when the loss never fell: then fastai's other rule, minimum / 10.
suggestion = found.suggestion or found.minimum_rate / 10
print(f"range test: suggestion {suggestion:.1e}, lowest loss at "
      f"{found.minimum_rate:.1e}")
figure = found.plot()
figure.savefig(OUTPUT_DIR / "lr_range_test.png", dpi=100)
figure

# %% [markdown]
# **One cycle.** `ks.OneCycle` (Smith, 2018; fastai's `fit_one_cycle`) is a Keras
# learning-rate schedule: a warm-up from `RATE / 25` to `RATE` over the first 10% of
# the steps, then a cosine decay to `RATE / 10,000`. It is saved with the model.
#
# **A run that collapses is caught.** With a rate a little too high, fine-tuning on a
# few hundred pictures can end with a NaN loss, or with a model that predicts one
# class for every picture, whose accuracy (the share of that class) looks like a
# poor but real result. `ks.CollapseCheck` predicts the validation pictures after
# each epoch, stops the run and warns when that happens, and records why.

# %%
schedule = ks.OneCycle(RATE, total_steps=EPOCHS * steps, warmup_fraction=0.1)
optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
model.compile(optimizer, loss, metrics=metrics)
check = ks.CollapseCheck(validation)
recipe = model.fit(
    train, validation_data=validation, epochs=EPOCHS, verbose=0, callbacks=[check]
)
status = check.collapse or "no collapse"
print(f"collapse check: {status!r}")
test_accuracy("recipe phase 2, whole base")

# %%
figure = ks.plot_history(recipe)
figure.savefig(OUTPUT_DIR / "recipe.png", dpi=100)
figure

# %% [markdown]
# ## Test-time augmentation
#
# `ks.predict_with_tta` shows the model each picture in a few fixed views (here as
# it is and mirrored) and averages the predictions; it returns what `predict`
# returns. The model outputs logits, so the average is of logits.

# %%
averaged = ks.predict_with_tta(model, test_pictures, flips=("none", "horizontal"))
accuracy = np.mean(averaged.argmax(axis=1) == test_labels)
results["recipe + test-time flips"] = accuracy
print(f"recipe + test-time flips: test accuracy {accuracy:.3f}")

# %% [markdown]
# ## What each step bought
#
# All on the same 1,000 test pictures (one picture is 0.1 point). The
# learning-quality benchmark page repeats this with three draws of the training
# pictures and at 5, 25 and 100 pictures per class, with each tool of the recipe
# switched off in turn.

# %%
for name, accuracy in results.items():
    print(f"{name:<32} {accuracy:.3f}")

# %% [markdown]
# ## Learning rates per block and gradual unfreezing, with the same schedule
#
# Two refinements from ULMFiT (Howard & Ruder, 2018) are in keras-smalldata and
# compose with the recipe: **learning rates per block**
# (`ks.DiscriminativeOptimizer`: the last block at the base rate, each block below
# it `layer_decay` times slower, as timm's layer decay does) and **gradual
# unfreezing** (`ks.GradualUnfreezing`: one more block every few epochs, from the
# top down). The `DiscriminativeOptimizer` wraps the recipe's AdamW and its
# one-cycle schedule, and its multipliers scale the scheduled rate (shown, not run
# here; the learning-quality page measured them on the classic recipe):
#
# ```python
# schedule = ks.OneCycle(RATE, total_steps=EPOCHS * steps, warmup_fraction=0.1)
# optimizer = ks.DiscriminativeOptimizer(
#     keras.optimizers.AdamW(schedule, weight_decay=1e-4), model, layer_decay=0.8)
# model.compile(optimizer, loss, metrics=metrics)
# model.fit(train, validation_data=validation, epochs=EPOCHS,
#           callbacks=[ks.GradualUnfreezing(base, every=2)])
# ```
#
# The two second phases run here, compared by their validation loss:

# %%
figure = Figure(figsize=(7, 3.6), layout="constrained")
ax = figure.add_subplot()
for name, history in (("classic: last block, RMSprop(1e-5)", classic),
                      ("recipe: whole base, one cycle", recipe)):
    losses = history.history["val_loss"]
    ax.plot(range(1, len(losses) + 1), losses, marker="o", markersize=3, label=name)
ax.set_xlabel("epoch of the second phase")
ax.set_ylabel("validation loss")
ax.legend()
figure.savefig(OUTPUT_DIR / "second_phases.png", dpi=100)
figure

# %% [markdown]
# ## When to use which
#
# - **Frozen features** (tutorial 3) first: cheap, and on pictures like ImageNet's
#   hard to beat with a few hundred pictures.
# - **The classic second phase** (the last block at 1e-5) is safe but moves little;
#   on pictures unlike ImageNet's it buys almost nothing.
# - **The recipe** (the whole base, AdamW, a peak rate at or below the range test's
#   lowest loss, one cycle, `CollapseCheck`) is what to try when frozen features
#   fall short. It costs a full backward pass per step, about three times a frozen
#   base's step. Without the warm-up, or with a peak rate past the range test's
#   minimum, it can collapse to one class: `CollapseCheck` says so.
# - **Learning rates per block** and **gradual unfreezing** protect the lower,
#   generic blocks; they matter most with long runs and larger data.
#
# The classic VGG16 variant is the same code with another architecture and an
# explicit boundary (it needs VGG16's ImageNet weights, which Keras downloads on
# first use; this page ran offline with MobileNetV2's, so it is shown, not run):
#
# ```python
# base = ks.PretrainedBase("vgg16", input_shape=(150, 150, 3), weights="imagenet")
# ...  # model and phase 1 as above
# base.freeze_until("block5_conv1", recompile=model,
#                   optimizer=keras.optimizers.RMSprop(1e-5))
# ```
