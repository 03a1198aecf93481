"""Input pipelines: a TrainConfig -> the batches ``fit`` trains on, on the configured backend.

    >>> bundle = load_batches(TrainConfig(dataset="/usr/share/datasets/fashion-mnist"))
    >>> images, labels = next(iter(bundle.train))   # float32 [128,28,28,1] 0..255, int64

One entry, ``load_batches(config)``, serves ``fit``, ``evaluate``, ``export`` (its test
split and int8 calibration images) and ``export --micro``. A local source is read
(``sources.py``), prepared (colour, size, one-vs-rest, the seeded validation split) and
checked against the model with numpy only (``read_source``), before TensorFlow loads;
then it is batched for the backend keras runs on (``build_batches``): tf.data on
TensorFlow, a ``keras.utils.PyDataset`` (``feed.ArrayBatches``) on JAX and torch. A
TFDS name is decoded, resized and cached by tf.data. Both use the same ``augmenter``, so
``--augment`` means the same on every backend: tf.data runs it in its parallel map; on
JAX and torch the bundle hands it to the model (``DatasetBundle.augment``), whose
compiled training step runs it on the device.

Images stay raw pixels (0-255, as float32 in batches): models scale them themselves, so
the same pixels feed training, evaluation and exported files.
"""

import difflib
from dataclasses import dataclass, field, replace

import numpy as np

from lenet_keras.backends import active_backend, require_tensorflow
from lenet_keras.config import TrainConfig
from lenet_keras.devices import plain_float32, select_backend
from lenet_keras.errors import BadInput
from lenet_keras.quiet import import_keras, import_tensorflow
from lenet_keras.registry import check_input
from lenet_keras.sources import (
    DEFAULT_FOLDER_IMAGE_SIZE, dataset_name, load_arrays, prepare_tfds, resize_images,
    source_kind, tfds_builder, to_grayscale, to_rgb,
)


@dataclass
class DatasetBundle:
    """Everything training needs from a data source.

    ``train``/``val``/``test`` yield ``(images float32 [B,H,W,C] in 0..255, labels int64)``.
    """

    name: str
    train: object
    val: object
    test: object
    class_names: list
    image_shape: tuple
    num_train: int
    num_val: int
    num_test: int
    class_weight: dict = None
    skipped_files: list = field(default_factory=list)
    # Called with each epoch's index as it begins: the training shuffle of epoch e is
    # fixed by (seed, e), also after a resume. None: a source that cannot (TFDS).
    set_epoch: object = None
    # The augmenter the model runs inside its training step (JAX, torch: the batches are
    # source pixels); None where tf.data augments, or for --augment none.
    augment: object = None


# ---------------------------------------------------------------------------------------
# Labels: one-vs-rest and class weights
# ---------------------------------------------------------------------------------------


def positive_class_index(class_names, positive_class):
    if positive_class not in class_names:
        close = difflib.get_close_matches(positive_class, class_names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BadInput(f"--positive-class '{positive_class}' is not a class of this dataset{hint}")
    return class_names.index(positive_class)


def binary_class_names(positive_class):
    return [f"not_{positive_class}", positive_class]


def balanced_class_weight(labels, num_classes):
    """Weights n / (k * count_c), so each class contributes equally to the loss."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    total = counts.sum()
    return {c: float(total / (num_classes * n)) if n else 0.0 for c, n in enumerate(counts)}


# ---------------------------------------------------------------------------------------
# Augmentation: one for both feeders and every backend
# ---------------------------------------------------------------------------------------


def augmenter(kind, channels, seed):
    """The Keras layers that augment whole training batches, or None for "none".

    kind (config.AUGMENTATIONS): "shift" small random shifts and zooms, plus left-right
    flips for photos (3 channels); "flip" left-right flips only; "shift+flip" both, for
    grey images too (label-preserving for clothes, not for digits).
    """
    if kind == "none":
        return None
    keras = import_keras()

    steps = []
    if kind in ("shift", "shift+flip"):
        steps += [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
        ]
    if kind in ("flip", "shift+flip") or (kind == "shift" and channels == 3):
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))
    return keras.Sequential(steps, name="augment")


def reseed(augment, seed, epoch):
    """Restart the augmenter's random streams at (seed, epoch), one per layer.

    Where the model runs the augmenter (JAX, torch), its layers' seed states (its only
    variables, not weights: checkpoints do not hold them) are set as each epoch begins,
    so a resumed run draws the flips and shifts of the epochs it resumes. A state is a
    raw (key, counter) pair: each draw adds 1 to the counter. Keys below 2**31: torch
    keeps the state as int32.
    """
    for index, state in enumerate(augment.non_trainable_variables):
        key = np.random.default_rng([seed, epoch, index]).integers(2**31)
        state.assign(np.array([key, 0], dtype=state.dtype))


# ---------------------------------------------------------------------------------------
# Local sources: arrays prepared with numpy only
# ---------------------------------------------------------------------------------------


def _seeded_split(num, fraction, seed):
    """Seeded permutation of range(num) cut into (kept, held-out) index arrays."""
    order = np.random.default_rng(seed).permutation(num)
    held = int(round(num * fraction))
    return order[held:], order[:held]


@dataclass
class PreparedArrays:
    """A local source after colour, size, one-vs-rest and the validation split: numpy
    only, so it is read and checked before TensorFlow loads (and feeds any backend)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    class_weight: dict = None
    skipped_files: list = field(default_factory=list)

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.x_train.shape[1:])

    def bundle(self, train, val, test):
        """The DatasetBundle of these arrays, fed by the given train/val/test pipelines."""
        return DatasetBundle(
            name=self.name, train=train, val=val, test=test, class_names=self.class_names,
            image_shape=self.image_shape, num_train=len(self.x_train),
            num_val=len(self.x_val), num_test=len(self.x_test),
            class_weight=self.class_weight, skipped_files=self.skipped_files,
        )


def _convert(x, color, image_size):
    if color == "grayscale":
        x = to_grayscale(x)
    elif color == "rgb":
        x = to_rgb(x)
    return resize_images(x, image_size) if image_size else x


def prepare_arrays(config):
    """Read the config's local source and apply its options (colour, size, one-vs-rest,
    validation split): a PreparedArrays, before any TensorFlow import."""
    arrays = load_arrays(config.dataset, config.image_size, config.seed)
    x_train = _convert(arrays.x_train, config.color, config.image_size)
    x_test = _convert(arrays.x_test, config.color, config.image_size)
    y_train, y_test, class_names = arrays.y_train, arrays.y_test, arrays.class_names
    class_weight = None
    if config.positive_class is not None:
        index = positive_class_index(class_names, config.positive_class)
        y_train, y_test = (y_train == index).astype(np.int64), (y_test == index).astype(np.int64)
        class_names = binary_class_names(config.positive_class)
    keep, held = _seeded_split(len(x_train), config.val_split, config.seed)
    if len(keep) == 0:
        raise BadInput(f"--val-split {config.val_split} leaves no training images "
                       f"(all {len(x_train)} go to validation); use a smaller --val-split")
    x_val, y_val = x_train[held], y_train[held]
    x_train, y_train = x_train[keep], y_train[keep]
    if config.positive_class is not None:
        class_weight = balanced_class_weight(y_train, 2)
    return PreparedArrays(dataset_name(config.dataset), x_train, y_train, x_val, y_val,
                          x_test, y_test, list(class_names), class_weight, arrays.skipped_files)


# ---------------------------------------------------------------------------------------
# tf.data over arrays (TensorFlow backend)
# ---------------------------------------------------------------------------------------


def _index_batches(num, batch_size, training, seed, epoch=None):
    """Batches of example indices; for training, reshuffled each epoch (seeded) and
    without a ragged last batch.

    The training permutation is drawn and cut into batches with whole-tensor ops: a
    shuffle buffer of single indices made the whole pipeline about half as fast.
    Epoch e's permutation is fixed by (seed, e), as in ``feed.ArrayBatches``: ``epoch``
    (an int64 tf.Variable; the bundle's ``set_epoch`` sets it as each epoch begins) is
    read when a pass starts and counts the passes, so a resumed run replays the shuffles
    of the epochs it resumes (``Dataset.random`` restarted from epoch 1's).
    """
    tf = import_tensorflow()

    if not training:
        return tf.data.Dataset.range(num).batch(batch_size)
    full = num // batch_size
    rest = 0 if full else num  # a remainder is dropped, unless it is all there is

    def cut(order):
        batches = tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: full * batch_size], [full, batch_size]))
        if rest:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order))
        return batches

    def permutation(epoch_seed):
        return tf.random.experimental.stateless_shuffle(
            tf.range(num, dtype=tf.int64), seed=tf.stack([epoch_seed, tf.constant(seed, tf.int64)]))

    epoch = epoch if epoch is not None else tf.Variable(0, dtype=tf.int64, trainable=False)
    # The pass's epoch; the next pass (without set_epoch: a plain loop) takes the next one.
    epoch_seeds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
        lambda _: epoch.assign_add(1) - 1)
    batches = epoch_seeds.flat_map(lambda epoch_seed: cut(permutation(epoch_seed)))
    # flat_map hides the length; Keras needs it for steps per epoch and progress bars.
    return batches.apply(tf.data.experimental.assert_cardinality(full + (1 if rest else 0)))


def _augmented(dataset, augment):
    """``dataset`` with ``augment`` (an augmenter, or None) applied to its image batches."""
    if augment is None:
        return dataset
    tf = import_tensorflow()

    return dataset.map(lambda images, labels: (augment(images, training=True), labels),
                       num_parallel_calls=tf.data.AUTOTUNE)


def array_pipeline(x, y, batch_size, training=False, augment=None, seed=42, epoch=None):
    """A tf.data pipeline over in-memory arrays; ``augment`` is an ``augmenter`` or None;
    ``epoch`` the training shuffle's epoch variable (see ``_index_batches``).

    Shuffles indices rather than images and gathers whole batches, so the pipeline costs
    a few vectorised ops per batch instead of per image.
    """
    tf = import_tensorflow()

    images = tf.constant(x)
    labels = tf.constant(y)
    dataset = _index_batches(len(x), batch_size, training, seed, epoch).map(
        lambda i: (tf.cast(tf.gather(images, i), tf.float32), tf.gather(labels, i)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return _augmented(dataset, augment if training else None).prefetch(tf.data.AUTOTUNE)


def _one_worker(bundle):
    """MirroredStrategy splits every batch over the local devices; there are no other
    workers to shard files or data between (which TensorFlow warns about each epoch)."""
    tf = import_tensorflow()

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    for split in ("train", "val", "test"):
        if getattr(bundle, split) is not None:
            setattr(bundle, split, getattr(bundle, split).with_options(options))


# ---------------------------------------------------------------------------------------
# TFDS (TensorFlow backend)
# ---------------------------------------------------------------------------------------


def _tfds_pipeline(builder, split, *, size, channels, label_map, batch_size, training,
                   augment, seed):
    """Decode -> resize / convert color -> cache -> shuffle -> batch -> augment -> prefetch."""
    tf = import_tensorflow()

    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)

    def prepare(image, label):
        image.set_shape([None, None, None])
        if channels == 1 and image.shape[-1] != 1:
            image = tf.image.rgb_to_grayscale(image)
        elif channels == 3 and image.shape[-1] != 3:
            image = tf.image.grayscale_to_rgb(image)
        image = tf.image.resize(image, (size, size), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return image, label_map(label)

    # Cache the small decoded uint8 images: decoding and resizing run once, not per epoch.
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda images, labels: (tf.cast(images, tf.float32), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return _augmented(dataset, augment if training else None).prefetch(tf.data.AUTOTUNE)


def _tfds_splits(available, val_split):
    """(train, validation or None, test) TFDS split names for a dataset's splits.

    Some datasets (food101, cats_vs_dogs, ...) provide no TEST split: use VALIDATION,
    else hold out the last 20% of TRAIN. Mock data (tests) reports no splits at all.
    TFDS slices are deterministic (not seeded): the same examples every run.
    """
    if "test" in available or not available:
        test, train = "test", "train"
    elif "validation" in available:
        test, train = "validation", "train"
    else:  # train[:80%] and train[80%:]; validation from the first part
        return "train[:70%]", "train[70%:80%]", "train[80%:]"
    percent = int(round(val_split * 100))
    if not percent:
        return train, None, test
    return f"{train}[:-{percent}%]", f"{train}[-{percent}%:]", test


def _split_size(builder, split):
    try:
        return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError):  # mock data: no split metadata
        return int(builder.as_dataset(split=split).reduce(0, lambda n, _: n + 1))


def _load_tfds(config):
    """The DatasetBundle of a TFDS name (tf.data pipelines, TensorFlow backend)."""
    tf = import_tensorflow()

    name = config.dataset
    builder = tfds_builder(name, config.data_dir)
    prepare_tfds(builder, name, config.manual_dir)
    image_feature = builder.info.features["image"]
    class_names = list(builder.info.features["label"].names)
    size = config.image_size or image_feature.shape[0] or DEFAULT_FOLDER_IMAGE_SIZE
    channels = {"grayscale": 1, "rgb": 3}.get(config.color) or image_feature.shape[-1] or 3
    train_split, val_split, test_split = _tfds_splits(set(builder.info.splits.keys()),
                                                      config.val_split)
    label_map = lambda label: label  # noqa: E731
    if config.positive_class is not None:
        index = positive_class_index(class_names, config.positive_class)
        label_map = lambda label: tf.cast(tf.equal(label, index), tf.int64)  # noqa: E731
        class_names = binary_class_names(config.positive_class)
    common = dict(size=size, channels=channels, label_map=label_map,
                  batch_size=config.batch_size, seed=config.seed, augment=None)
    with plain_float32():  # augmentation layers compute in float32 whatever the policy
        augment = augmenter(config.augment, channels, config.seed)
    train = _tfds_pipeline(builder, train_split, training=True, **{**common, "augment": augment})
    val = _tfds_pipeline(builder, val_split, training=False, **common) if val_split else None
    test = _tfds_pipeline(builder, test_split, training=False, **common)
    class_weight = None
    if config.positive_class is not None:
        labels = np.concatenate([y.numpy() for _, y in train])
        class_weight = balanced_class_weight(labels, 2)
    return DatasetBundle(
        name=name, train=train, val=val, test=test, class_names=class_names,
        image_shape=(size, size, channels), num_train=_split_size(builder, train_split),
        num_val=_split_size(builder, val_split) if val_split else 0,
        num_test=_split_size(builder, test_split), class_weight=class_weight,
    )


# ---------------------------------------------------------------------------------------
# The one entry: config -> batches
# ---------------------------------------------------------------------------------------


def read_source(config, check_model=True):
    """The config's local source read, prepared and checked against its model (image
    size, number of classes) with numpy only: a PreparedArrays. None for a TFDS name,
    which tf.data reads later (BadInput at once if TensorFlow is missing)."""
    if source_kind(config.dataset) == "tfds":
        require_tensorflow(f"the TFDS dataset '{config.dataset}'")
        return None
    prepared = prepare_arrays(config)
    if check_model:
        check_input(config.model, prepared.image_shape, len(prepared.class_names))
    return prepared


def build_batches(config, prepared, placement=None):
    """Batches over what ``read_source`` returned, for the backend keras runs on:
    tf.data on TensorFlow, ``feed.ArrayBatches`` on JAX and torch. ``placement``
    (devices.Placement) shards them for a distributed run."""
    if prepared is None:
        return _load_tfds(config)
    import_keras()
    with plain_float32():  # augmentation layers compute in float32 whatever the policy
        augment = augmenter(config.augment, prepared.image_shape[-1], config.seed)
    if active_backend() == "tensorflow":
        tf = import_tensorflow()
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        bundle = prepared.bundle(
            train=array_pipeline(prepared.x_train, prepared.y_train, config.batch_size,
                                 True, augment, config.seed, epoch),
            val=(array_pipeline(prepared.x_val, prepared.y_val, config.batch_size)
                 if len(prepared.x_val) else None),
            test=array_pipeline(prepared.x_test, prepared.y_test, config.batch_size),
        )
        bundle.set_epoch = epoch.assign
        if placement is not None and placement.strategy is not None:
            _one_worker(bundle)
        return bundle
    from lenet_keras.feed import feed_bundle

    shard, multiple = (0, 1), 1
    if placement is not None:
        shard, multiple = (placement.process_id, placement.processes), placement.replicas
    # One JAX device: the data lives there. A distributed run gives Keras host batches,
    # which it splits over the devices itself.
    on_device = active_backend() == "jax" and (placement is None or placement.distribute == "off")
    bundle = feed_bundle(prepared, batch_size=config.batch_size, seed=config.seed,
                         shard=shard, multiple=multiple, on_device=on_device)
    if augment is not None:
        shuffle = bundle.set_epoch

        def set_epoch(epoch):
            shuffle(epoch)
            reseed(augment, config.seed, epoch)

        bundle.augment, bundle.set_epoch = augment, set_epoch
        set_epoch(0)
    return bundle


def load_batches(config, placement=None):
    """The DatasetBundle a (checked) config trains on: ``build_batches(read_source())``."""
    return build_batches(config, read_source(config), placement)


def evaluation_batches(config):
    """``load_batches`` without augmentation: what export (test split, int8 calibration
    images from the training split) and evaluate read."""
    return load_batches(replace(config, augment="none"))


def load_dataset(dataset=None, *, model=None, **options):
    """What ``fit`` would train on, as a DatasetBundle.

    Takes ``fit``'s options (TrainConfig's fields): ``dataset`` is None (the embedded
    sample), a path (.npz, IDX folder, image folder) or a TFDS name; ``model``, a
    registry name, adds its recipe (e.g. mobilenet_mini trains with flips) and checks
    that the images fit it (None: the global defaults, no model check); ``batch_size``,
    ``image_size``, ``color`` (None, "grayscale", "rgb"), ``val_split``, ``seed``,
    ``augment`` ("none", "shift", "flip", "shift+flip"), ``positive_class``,
    ``data_dir``, ``manual_dir``, ``backend``. Checked as ``fit`` checks them.

    Returns:
        A DatasetBundle: ``train``/``val``/``test`` yield (float32 images 0..255
        [B,H,W,C], int64 labels) as tf.data on TensorFlow and a keras PyDataset on the
        JAX and torch backends; plus ``class_names``, ``image_shape`` and split sizes.
        On JAX and torch the training batches are not augmented: ``bundle.augment``
        holds the augmenter, which ``fit`` runs inside the model's training step.

    Example:
        >>> bundle = load_dataset("/usr/share/datasets/fashion-mnist", augment="flip")
    """
    given = {k: v for k, v in options.items() if v is not None}
    config = (TrainConfig.for_model(model, dataset=dataset, **given) if model
              else TrainConfig(dataset=dataset, **given))
    config = config.check().resolved()
    select_backend(config.backend)
    return build_batches(config, read_source(config, check_model=model is not None))
