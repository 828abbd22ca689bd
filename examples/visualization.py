# %% [markdown]
# # 5. Visualising what the convnet learned
#
# A convnet is not a black box: what each layer computes can be drawn. This page
# shows the three classic views into a network, and where a model looks when it
# decides:
#
# 1. **activations**: what the layers of a small convnet output for one picture;
# 2. **filter patterns**: for each filter, the picture it responds to most, found by
#    gradient ascent, for the small convnet and for ImageNet-trained MobileNetV2;
# 3. **Grad-CAM heatmaps**: which parts of a picture the decision rests on, on
#    photos with ImageNet's classes, then on a MobileNetV2 fine-tuned on a hard
#    task, with a confusion matrix and the pictures it is most wrong about.
#
# The page is the script `examples/visualization.py`, run top to bottom; every
# number and figure comes from that run, which prints the weights it used.

# %%
import argparse
import os
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from skimage import data as photos

import keras_smalldata as ks

# %% [markdown]
# ## Settings

# %%
DATA_DIR = None  # None: the demo data; or a folder with train/, validation/, test/
OUTPUT_DIR = Path("outputs/visualization")
WEIGHTS = "imagenet"  # MobileNetV2's ImageNet weights, or None for random weights
IMAGE_SIZE = 96  # pixels per side of the demo pictures
EPOCHS = 15
TOPS_SPLITS = (100, 50, 250)  # the hard task: train, validation, test per class
TOPS_EPOCHS = 30  # the fine-tuning phase on the hard task
FILTERS = 16  # filter patterns drawn per layer
SEED = 42

parser = argparse.ArgumentParser(
    description="Tutorial 5: activations, filter patterns and Grad-CAM heatmaps.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
)
parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                    help="folder of train/, validation/, test/; None: the demo task")
parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR,
                    help="where the figures and files go")
parser.add_argument("--weights", default=WEIGHTS, help="'imagenet' or 'none'")
parser.add_argument("--image-size", type=int, default=IMAGE_SIZE,
                    help="side of the square pictures, in pixels")
parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
parser.add_argument("--filters", type=int, default=FILTERS,
                    help="filters whose patterns are drawn")
parser.add_argument("--seed", type=int, default=SEED, help="seed of every random draw")
parser.add_argument(
    "--quick",
    action="store_true",
    default=os.environ.get("KERAS_SMALLDATA_QUICK") == "1",
    help="32 px, 1 epoch, 4 filters, random weights: a smoke test",
)
args, _ = parser.parse_known_args()
DATA_DIR, OUTPUT_DIR, SEED = args.data_dir, args.output_dir, args.seed
WEIGHTS = None if args.weights.lower() == "none" else args.weights
IMAGE_SIZE, EPOCHS, FILTERS = args.image_size, args.epochs, args.filters
if args.quick:
    IMAGE_SIZE, EPOCHS, FILTERS, WEIGHTS = 32, 1, 4, None
    TOPS_SPLITS, TOPS_EPOCHS = (8, 4, 4), 1

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
class_names = train.class_names
# The test pictures in folder order: faces first, then the other patches.
test_pictures = np.concatenate([x.numpy() for x, _ in test])

# %% [markdown]
# ## 1. Activations of a small convnet
#
# Tutorial 1's convnet, trained from scratch on the demo data. `ks.get_activations`
# runs the model once on a picture and records what the chosen layers output;
# `ks.plot_activations` draws every channel of each layer as a small picture, each
# standardised on its own so that weak and strong channels are equally visible.

# %%
convnet = ks.small_convnet((IMAGE_SIZE, IMAGE_SIZE, 3), filters=(32, 64, 128))
convnet.compile(
    keras.optimizers.RMSprop(1e-3), "binary_crossentropy", metrics=["accuracy"]
)
convnet.fit(train, validation_data=validation, epochs=EPOCHS, verbose=0)
_, accuracy = convnet.evaluate(test, verbose=0)
print(f"small convnet: test accuracy {accuracy:.3f}")

face = test_pictures[:1]
activations = ks.get_activations(convnet, face, ["conv1", "conv2", "conv3"])
for name, values in activations.items():
    print(f"{name}: {values.shape[1:]}")

# %%
figure = ks.plot_activations(activations, images_per_row=16, one_figure=True)
figure.savefig(OUTPUT_DIR / "activations.png", dpi=80)
figure

# %% [markdown]
# The first layer keeps most of the picture (edges, light and dark areas); deeper
# layers are smaller and more abstract, and more of their channels are flat, one
# even teal tile (a channel with the same value everywhere is drawn in the middle
# colour of the map): the pattern they detect is not in this face.
#
# ## 2. Filter patterns
#
# `ks.filter_patterns` starts from a grey picture with a little noise and climbs the
# gradient of each filter's mean value, many filters in one batch. It climbs the
# value *before* the layer's activation function: a filter whose ReLU output is zero
# on the grey start picture has no gradient after the ReLU, and would come back as
# the grey noise it started from (as it did, for a quarter to a third of the filters
# of a pretrained VGG16's middle layers, with the classic recipe). Each filter is
# reported as excited or not.

# %%
patterns = ks.filter_patterns(
    convnet, "conv2", filters=range(FILTERS), seed=SEED, verbose=0
)
print(patterns)
figure = ks.plot_filter_patterns(patterns, title="small convnet, conv2")
figure.savefig(OUTPUT_DIR / "filters_convnet.png", dpi=100)
figure

# %% [markdown]
# A small convnet trained on 120 pictures learns little more than colour blobs and
# edges. A network trained on ImageNet has filters for textures and object parts.
# MobileNetV2's layers are named by block; each `block_N_expand` convolution feeds
# the block's ReLU6. The base takes 0-255 pictures (its preprocessing is inside).

# %%
pretrained, weights = ks.pretrained_base_or_random(
    "mobilenet_v2", WEIGHTS, input_shape=(128, 128, 3)
)
print(f"{pretrained.name}: weights: {weights}")
layers = ("block_2_expand", "block_6_expand", "block_12_expand")
figure = Figure(figsize=(12, 4.6), layout="constrained")
for ax, layer in zip(figure.subplots(1, len(layers)), layers):
    patterns = ks.filter_patterns(
        pretrained, layer, filters=range(FILTERS), seed=SEED, verbose=0
    )
    print(f"{layer}: {int(patterns.excited.sum())} of {len(patterns)} filters excited")
    ks.plot_filter_patterns(patterns, images_per_row=4, title=layer, ax=ax)
figure.savefig(OUTPUT_DIR / "filters_mobilenet_v2.png", dpi=100)
figure

# %% [markdown]
# Early layers respond to colours and to edges at one orientation, middle layers to
# textures, and later layers to patterns that start to look like parts of objects.

# %% [markdown]
# ## 3. Grad-CAM on photos, with ImageNet's classes
#
# Grad-CAM (Selvaraju et al., 2017) weights each channel of the last convolution
# block by how much the class score depends on it, and keeps the positive evidence:
# a heatmap of where the class was seen. Here it runs on MobileNetV2 with its
# ImageNet classifier, on three photos shipped with scikit-image. This model is a
# bare `keras.applications` model: it takes pictures preprocessed by its
# `preprocess_input` (scaled to [-1, 1]).
#
# Class names: `keras.applications.mobilenet_v2.decode_predictions` turns scores
# into names, but it downloads ImageNet's class index on first use, which this
# offline run cannot; the names of the classes the photos get are written below
# (ImageNet-1k indices, in the order of that class index).

# %%
IMAGENET_NAMES = {
    281: "tabby", 282: "tiger cat", 285: "Egyptian cat", 504: "coffee mug",
    872: "tripod", 925: "consomme", 967: "espresso", 968: "cup",
}
names = [IMAGENET_NAMES.get(index, f"class {index}") for index in range(1000)]

imagenet_model = keras.applications.MobileNetV2(weights=WEIGHTS)
cameraman = np.stack([photos.camera()] * 3, axis=-1)  # grey: three equal channels
photo_batch = np.stack([
    keras.ops.convert_to_numpy(keras.ops.image.resize(photo, (224, 224)))
    for photo in (photos.chelsea(), photos.coffee(), cameraman)
])
inputs = keras.applications.mobilenet_v2.preprocess_input(photo_batch)
probabilities = imagenet_model.predict(inputs, verbose=0)
for name, row in zip(("chelsea", "coffee", "camera"), probabilities):
    top = np.argsort(row)[::-1][:3]
    print(f"{name}: " + ", ".join(f"{names[i]!r} {row[i]:.2f}" for i in top))

# %%
maps = ks.class_activation_maps(imagenet_model, inputs)
figure = ks.plot_class_activation_maps(
    maps, inputs, class_names=names, value_range=(-1, 1)
)
figure.savefig(OUTPUT_DIR / "grad_cam_photos.png", dpi=80)
figure

# %% [markdown]
# The heatmaps sit on the cat's face, on the cup of espresso and on the tripod the
# cameraman stands behind: the network decides from the object, not from the
# background. `ks.class_activation_maps` computes the maps and
# `ks.plot_class_activation_maps` draws them; for your own figures, `maps.heatmaps`
# holds the heatmaps themselves (values in [0, 1]) and `ks.overlay_heatmap` blends one
# over its picture.
#
# ## 4. Grad-CAM on a model fine-tuned on a hard task
#
# The same view on a model that has to work for its accuracy: tutorial 4's recipe
# on the hard demo task, Fashion-MNIST's four upper-body classes (T-shirt/top,
# pullover, coat, shirt) with 100 training pictures per class. MobileNetV2 with a
# linear head, the head first on the frozen base, then the whole base with AdamW
# under a one-cycle schedule. Grad-CAM finds the last convolution inside the nested
# base by itself.

# %%
tops_dir = ks.demo_dataset("fashion_tops", splits=TOPS_SPLITS)


def load_tops(split, shuffle):
    return keras.utils.image_dataset_from_directory(
        tops_dir / split, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=32,
        label_mode="categorical", shuffle=shuffle, seed=SEED, verbose=False,
    )


tops_train = load_tops("train", shuffle=True)
tops_validation = load_tops("validation", shuffle=False)
tops_test = load_tops("test", shuffle=False)
tops_names = tops_train.class_names
shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
base, weights = ks.pretrained_base_or_random(
    "mobilenet_v2", WEIGHTS, input_shape=shape, pooling="avg", train_batchnorm=False
)
augmentation = ks.ImageDataGeneratorAugmentation(
    width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True,
    fill_mode="nearest", seed=SEED,
)
inputs = keras.Input(shape)
features = keras.layers.Dropout(0.2, seed=SEED)(base(augmentation(inputs)))
outputs = keras.layers.Dense(len(tops_names), name="logits")(features)
model = keras.Model(inputs, outputs)
loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
steps = len(tops_train)
base.freeze()
model.compile(keras.optimizers.AdamW(ks.OneCycle(1e-3, total_steps=5 * steps)), loss)
model.fit(tops_train, epochs=5, verbose=0)
schedule = ks.OneCycle(3e-4, total_steps=TOPS_EPOCHS * steps, warmup_fraction=0.1)
base.unfreeze(
    recompile=model, optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4)
)
check = ks.CollapseCheck(tops_validation)
model.fit(tops_train, epochs=TOPS_EPOCHS, verbose=0, callbacks=[check])
status = check.collapse or "no collapse"
print(f"fine-tuned MobileNetV2, weights: {weights}, collapse check: {status!r}")

# %%
tops_pictures = np.concatenate([x.numpy() for x, _ in tops_test])
tops_labels = np.concatenate([y.numpy() for _, y in tops_test]).argmax(axis=1)
one_of_each = [np.flatnonzero(tops_labels == c)[0] for c in range(len(tops_names))]
tops_maps = ks.class_activation_maps(model, tops_pictures[one_of_each])
figure = ks.plot_class_activation_maps(
    tops_maps, tops_pictures[one_of_each], class_names=tops_names
)
figure.savefig(OUTPUT_DIR / "grad_cam_tops.png", dpi=80)
figure

# %% [markdown]
# ## Interpreting the mistakes: confusion matrix and top losses
#
# `ks.interpret` predicts every test picture once and keeps, for each, its true and
# predicted class, the probabilities and the loss (the cross-entropy of its true
# class). Its confusion matrix counts the pictures by true class (rows) and
# predicted class (columns): which classes the model mixes up, not only how often
# it is wrong.

# %%
result = ks.interpret(model, tops_test, class_names=tops_names)
print(result)
print(result.most_confused()[:3])
figure = result.plot_confusion_matrix()
figure.savefig(OUTPUT_DIR / "confusion_matrix.png", dpi=80)
figure

# %% [markdown]
# The **top losses** are the pictures the model is most wrong about, sorted by loss:
# each with its true class, the predicted class and its probability, and the
# Grad-CAM of the predicted class, what the model looked at when it was wrong.
# Confident mistakes are the ones to look at first: a mislabelled picture, a class
# boundary that even a person would hesitate on, or a shortcut the model learnt.

# %%
figure = result.plot_top_losses(8)
figure.savefig(OUTPUT_DIR / "top_losses.png", dpi=80)
figure
