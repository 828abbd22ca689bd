# %% [markdown]
# # 3. Feature extraction with a pretrained network
#
# A convnet trained on ImageNet's 1.3 million pictures has learnt edges, textures
# and object parts that are useful for almost any photo. With a small dataset, the
# fastest good recipe is to run that network's convolutional base **once** over
# every picture, keep its output (the *features*), and train only a small dense
# classifier on them. The classifier trains in seconds because the expensive part
# never runs again.
#
# This page runs that recipe with real ImageNet weights (MobileNetV2's) on the demo
# data, then the same with augmented passes, and shows what the feature cache saves.
# The page is the script `examples/feature_extraction.py`, run top to bottom; every
# number and figure below comes from that run, and the run prints which weights it
# used.

# %%
import argparse
import os
import time
import warnings
from pathlib import Path

import keras_smalldata as ks

# %% [markdown]
# ## Settings
#
# `WEIGHTS = "imagenet"` goes through Keras' own download-and-cache path: Keras
# downloads the weights file once into `~/.keras/models`. It may also be the path of
# a weights file, or `None` for random weights. The command line can override every
# setting (`--help`).

# %%
DATA_DIR = None  # None: the demo data; or a folder with train/, validation/, test/
OUTPUT_DIR = Path("outputs/feature_extraction")
CACHE_DIR = OUTPUT_DIR / "feature_cache"
ARCHITECTURE = "mobilenet_v2"
WEIGHTS = "imagenet"
IMAGE_SIZE = 96  # pixels per side; MobileNetV2's ImageNet weights start at 96
EPOCHS = 30
AUGMENT_ROUNDS = 4
SEED = 42

parser = argparse.ArgumentParser(
    description="Tutorial 3: feature extraction with a pretrained base.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                    help="folder of train/, validation/, test/; None: the demo task")
parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR,
                    help="where the figures and files go")
parser.add_argument("--cache-dir", type=Path, default=None,
                    help="feature cache folder; None: a folder inside --output-dir")
parser.add_argument("--architecture", default=ARCHITECTURE,
                    help="a keras.applications network")
parser.add_argument("--weights", default=WEIGHTS, help="'imagenet', 'none' or a path")
parser.add_argument("--image-size", type=int, default=IMAGE_SIZE,
                    help="side of the square pictures, in pixels")
parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
parser.add_argument("--augment-rounds", type=int, default=AUGMENT_ROUNDS,
                    help="augmented passes over the training pictures")
parser.add_argument("--seed", type=int, default=SEED, help="seed of every random draw")
parser.add_argument(
    "--quick",
    action="store_true",
    default=os.environ.get("KERAS_SMALLDATA_QUICK") == "1",
    help="32 px pictures, 1 epoch, 1 augmented round, random weights: a smoke test",
)
args, _ = parser.parse_known_args()
DATA_DIR, OUTPUT_DIR, SEED = args.data_dir, args.output_dir, args.seed
CACHE_DIR = args.cache_dir or OUTPUT_DIR / "feature_cache"
ARCHITECTURE = args.architecture
WEIGHTS = None if args.weights.lower() == "none" else args.weights
IMAGE_SIZE, EPOCHS, AUGMENT_ROUNDS = (args.image_size, args.epochs, args.augment_rounds)
if args.quick:
    IMAGE_SIZE, EPOCHS, AUGMENT_ROUNDS, WEIGHTS = 32, 1, 1, None

# %%
keras = ks.import_keras_quietly()
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
data_dir = DATA_DIR or ks.demo_dataset(image_size=IMAGE_SIZE)

# %% [markdown]
# ## The base: preprocessing inside
#
# `ks.PretrainedBase` wraps a `keras.applications` conv base (without its top) and
# puts the network's own preprocessing **inside** the model: MobileNetV2 was trained
# on pictures scaled to [-1, 1], VGG16 on BGR pictures with the ImageNet mean
# subtracted. The base takes pictures as `image_dataset_from_directory` gives them,
# 0-255: do not divide by 255 and do not call `preprocess_input` as well (feeding
# 0-1 pictures to a pretrained network is the classic silent accuracy loss).
#
# `ks.pretrained_base_or_random` is `PretrainedBase` for scripts that must run
# anywhere: when the ImageNet weights cannot be had (no network and no file in
# Keras' cache) it says so loudly, once, and returns a base with random weights,
# together with the weights it really got. This run prints them.

# %%
shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
base, weights = ks.pretrained_base_or_random(ARCHITECTURE, WEIGHTS, input_shape=shape)
print(f"{base.name}: {len(base.layers)} layers, weights: {weights}")
print("feature map of one picture:", base.output.shape[1:])


def load(split, shuffle):
    return keras.utils.image_dataset_from_directory(
        data_dir / split, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=32,
        label_mode="binary", shuffle=shuffle, seed=SEED, verbose=False,
    )


# %% [markdown]
# ## Extracting the features, with a cache
#
# `ks.extract_features` runs the base once over a dataset, in inference mode, and
# returns the features with their labels. Every picture is used exactly once
# whatever the batch size (the classic loop over an endless generator dropped or
# repeated pictures when the count was not a multiple of the batch size), and each
# row keeps its own label even though the training set reshuffles on every pass.
#
# With `cache_dir`, the features are written to disk as they are computed and the
# next call with the same inputs loads them instead of running the network again.
# The cache is keyed by what determines the features: the bytes of the pictures,
# the model's architecture and weights, the augmentation and the options. The
# fourth set is the training set once plain and then `AUGMENT_ROUNDS` times through
# random flips, rotations and zooms, new draws in every pass: the middle ground
# between plain feature extraction and training with augmentation end to end.

# %%
augmentation = ks.augmentation_preset("flip_rotate_zoom", seed=SEED)
timings = []
for run in (1, 2):
    start = time.perf_counter()
    features = {
        split: ks.extract_features(
            base, load(split, shuffle=split == "train"), cache_dir=CACHE_DIR, verbose=0
        )
        for split in ("train", "validation", "test")
    }
    features["train_augmented"] = ks.extract_features(
        base, load("train", shuffle=True), augmentation=augmentation,
        augment_rounds=AUGMENT_ROUNDS, seed=SEED, cache_dir=CACHE_DIR, verbose=0,
    )
    timings.append(time.perf_counter() - start)
    loaded = all(f.from_cache for f in features.values())
    print(f"run {run}: {'loaded from the cache' if loaded else 'computed'}")
print(f"the cached run took {timings[1] / timings[0]:.1%} of the time of the first")

for name, feature_set in features.items():
    print(f"{name}: {len(feature_set)} rows of shape {feature_set.feature_shape}")

# %% [markdown]
# 120 training, 40 validation and 40 test pictures give 120, 40 and 40 rows (the
# batch size, 32, divides none of them), and the augmented set has
# (1 + `AUGMENT_ROUNDS`) x 120 rows. (If the first run above says "loaded", the
# cache was already filled by an earlier run with the same inputs.)
#
# ## The classifier
#
# `ks.classifier_model` is the classic head, `Flatten -> Dense(256, relu) ->
# Dropout(0.5) -> Dense(1, sigmoid)`, for any feature shape. `FeatureSet.as_dataset`
# serves the rows in batches, reshuffled every epoch. Both heads train with the same
# settings on the plain or the augmented training features.

# %%
validation = features["validation"].as_dataset(batch_size=20)
test = features["test"].as_dataset(batch_size=20)
histories = {}
for name in ("train", "train_augmented"):
    keras.utils.set_random_seed(SEED)
    head = ks.classifier_model(features[name].feature_shape)
    head.compile(
        keras.optimizers.RMSprop(2e-5), "binary_crossentropy", metrics=["accuracy"]
    )
    start = time.perf_counter()
    history = head.fit(
        features[name].as_dataset(batch_size=20, shuffle=True, seed=SEED),
        validation_data=validation, epochs=EPOCHS, verbose=0,
    )
    seconds = time.perf_counter() - start
    _, accuracy = head.evaluate(test, verbose=0)
    histories[name] = history
    print(f"head on {name}: {len(features[name])} rows, {EPOCHS} epochs in "
          f"{seconds:.1f} s, test accuracy {accuracy:.3f}")

# %%
figure = ks.plot_history(histories["train"])
figure.savefig(OUTPUT_DIR / "curves_features.png", dpi=100)
figure

# %% [markdown]
# The head trains in seconds and needs few epochs: ImageNet features already
# separate faces from other patches. Compare with tutorials 1 and 2, which trained
# a whole convnet for 30 to 40 epochs to get there. With augmented passes the head
# sees five versions of each picture:

# %%
figure = ks.plot_history(histories["train_augmented"])
figure.savefig(OUTPUT_DIR / "curves_features_augmented.png", dpi=100)
figure

# %% [markdown]
# ## The classic recipe: VGG16 on dogs vs. cats
#
# The classic version of this recipe uses VGG16 on 2,000 pictures of dogs and cats
# at 150x150 (the features are then `(4, 4, 512)`): about 90% accuracy with plain
# features and about 96% with augmentation. With `PretrainedBase` it is the same
# code with another name; it needs VGG16's ImageNet weights, which Keras downloads
# on first use (this page ran offline with MobileNetV2's, so this part is shown, not
# run):
#
# ```python
# base = ks.PretrainedBase("vgg16", input_shape=(150, 150, 3), weights="imagenet")
# train = keras.utils.image_dataset_from_directory(
#     "cats_and_dogs_small/train", image_size=(150, 150), label_mode="binary")
# features = ks.extract_features(base, train, cache_dir="feature_cache")
# features.feature_shape  # (4, 4, 512)
# ```
#
# The price of feature extraction is that the base stays frozen: it cannot adapt to
# your pictures. Fine-tuning, the next tutorial, lets its last block adapt.
