"""Training: the run's config dataclass, and ``fit`` into a run directory (``runs.py``
says what the directory holds).

    >>> metrics = train(TrainConfig(model="lenet5", epochs=15), "runs/lenet5")

Everything that can be checked without TensorFlow (names, numbers, paths, the data of
local sources, the run directory's state) is checked before TensorFlow is imported, so
a mistake costs a fraction of a second and writes nothing.
"""

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from lenet_keras import runs
from lenet_keras.errors import BadInput
from lenet_keras.quiet import import_keras, import_tensorflow

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant")
COLORS = (None, "grayscale", "rgb")
AUGMENTATIONS = ("none", "shift", "flip", "shift+flip")  # data._augmenter's kinds
# Larger images would not be "small CNN" work and can exhaust memory before training.
MAX_IMAGE_SIZE = 1024
# numpy and TensorFlow seeds are unsigned 32-bit.
MAX_SEED = 2**32 - 1
# Beyond these a value is a typo, not a plan (and 2**40 overflows TensorFlow's int32 shapes).
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536


@dataclass
class TrainConfig:
    """One training run. Built by the CLI, saved as config.json next to the model."""

    model: str = "lenet5"
    # None: the embedded Fashion-MNIST sample, so a fresh clone trains offline.
    dataset: str = None
    # 15 epochs reach 0.90+ on the full Fashion-MNIST with the cosine schedule.
    epochs: int = 15
    batch_size: int = 128
    # Peak rate of the cosine schedule. Measured on Fashion-MNIST, lenet5, 15 epochs:
    # 1e-3 ends at 0.899-0.903 test accuracy, 2e-3 at 0.903-0.908 (3 seeds).
    learning_rate: float = 2e-3
    optimizer: str = "adam"  # "adam" or "sgd" (with momentum)
    momentum: float = 0.9
    # Cosine decay to zero over the run: converges in fewer epochs than a constant rate.
    schedule: str = "cosine"  # "cosine" or "constant"
    seed: int = 42
    val_split: float = 0.1
    image_size: int = None  # None: the dataset's own size
    color: str = None  # None (as the dataset), "grayscale" or "rgb"
    # False/"none", True/"shift" (shifts + zooms), "flip" or "shift+flip" (data.AUGMENTATIONS).
    augment: bool | str = False
    # Cross-entropy against (1 - e) one-hot + e uniform targets; 0 is plain cross-entropy.
    label_smoothing: float = 0.0
    # Decoupled weight decay (AdamW, or SGD's) per step, times the learning rate; 0: off.
    weight_decay: float = 0.0
    # Linear warm-up from 0 to the peak rate over this many epochs, then the schedule.
    warmup_epochs: int = 0
    positive_class: str = None
    early_stopping: int = 0  # patience in epochs; 0 turns it off
    data_dir: str = None
    manual_dir: str = None
    # None: XLA on the JAX backend (without it JAX runs every op eagerly), off on the
    # others. On CPU, XLA's convolutions train LeNet-5 ~3x slower than TensorFlow's oneDNN
    # kernels (benchmarks/README.md); Keras itself turns XLA off on CPU-only hosts.
    jit_compile: bool = None
    # Train steps run in one graph call per 64 batches: less Python and dispatch per step,
    # ~1.15x images/s on 2 CPU cores (more when the CPU is busy); same results as 1.
    steps_per_execution: int = 64
    # Keras backend: None is KERAS_BACKEND, else tensorflow (devices.py).
    backend: str = None
    # "off", "mirrored" (tf.distribute, TensorFlow) or "data-parallel" (Keras
    # distribution API, JAX); batch_size stays the global batch, the rate is not rescaled.
    distribute: str = "off"
    # "float32", "mixed_bfloat16" or "mixed_float16": Keras dtype policies. model.keras
    # and exports are float32 whatever trained them.
    precision: str = "float32"
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_json(self):
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def for_model(cls, model, **options):
        """A config with the model's registry training defaults (``ModelSpec.train``)
        under the given options; options that are None keep the defaults."""
        from lenet_keras.registry import get_spec

        given = {k: v for k, v in options.items() if v is not None}
        return cls(model=model, **{**get_spec(model).train, **given})

    # The options a registry model's recipe may change (ModelSpec.train).
    RECIPE_FIELDS = ("learning_rate", "batch_size", "augment", "label_smoothing",
                     "weight_decay", "warmup_epochs")

    def recipe_changes(self):
        """The recipe options that differ from the global defaults, e.g. "augment=flip";
        "" when none do."""
        default = TrainConfig()
        changed = []
        for name in self.RECIPE_FIELDS:
            value = getattr(self, name)
            # augment="none" is the default (False) spelled out.
            if (False if value == "none" else value) != getattr(default, name):
                changed.append(f"{name}={value}")
        return ", ".join(changed)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def check(self):
        """BadInput (one line, in terms of the options) for a config that cannot train.
        No TensorFlow needed: the CLI calls this before anything heavy is imported."""
        from lenet_keras.devices import check_choices, default_backend
        from lenet_keras.registry import get_spec

        spec = get_spec(self.model)
        check_choices(self.backend or default_backend(), self.distribute, self.precision)
        for name in ("epochs", "batch_size", "steps_per_execution"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(f"{name} must be a positive integer, got {value!r}")
        if self.epochs > MAX_EPOCHS or self.batch_size > MAX_BATCH_SIZE:
            name, value, bound = (("epochs", self.epochs, MAX_EPOCHS) if self.epochs > MAX_EPOCHS
                                  else ("batch_size", self.batch_size, MAX_BATCH_SIZE))
            raise BadInput(f"{name} must be at most {bound:,}, got {value:,}")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise BadInput(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        if not 0 <= self.val_split < 1:
            raise BadInput(f"val_split must be in [0, 1), got {self.val_split!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise BadInput(f"seed must be in [0, {MAX_SEED}], got {self.seed!r}")
        if self.image_size is not None and not spec.min_image_size <= self.image_size <= MAX_IMAGE_SIZE:
            raise BadInput(f"image_size must be in [{spec.min_image_size}, {MAX_IMAGE_SIZE}] "
                           f"for {self.model}, got {self.image_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise BadInput(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise BadInput(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.color not in COLORS:
            raise BadInput(f"color must be grayscale or rgb, got {self.color!r}")
        if self.early_stopping < 0:
            raise BadInput(f"early_stopping must be >= 0, got {self.early_stopping!r}")
        if self.augment not in (False, True, *AUGMENTATIONS):
            raise BadInput(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if not 0 <= self.label_smoothing < 1:
            raise BadInput(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise BadInput("weight_decay and warmup_epochs must be >= 0")
        return self

    def resolved(self):
        """This config with backend and jit_compile decided (as config.json records them)."""
        from dataclasses import replace

        from lenet_keras.devices import default_backend

        backend = self.backend or default_backend()
        jit = (backend == "jax") if self.jit_compile is None else self.jit_compile
        return replace(self, backend=backend, jit_compile=jit)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def learning_rate_schedule(config, steps_per_epoch):
    """The config's rate: a constant, or cosine decay to 0 over the run (after a linear
    warm-up from 0 over ``warmup_epochs``)."""
    keras = import_keras()

    if config.schedule != "cosine":
        return config.learning_rate
    warmup_steps = config.warmup_epochs * steps_per_epoch
    total = max(1, config.epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else config.learning_rate,
        decay_steps=max(1, total - warmup_steps),
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def _optimizer(config, steps_per_epoch):
    keras = import_keras()

    learning_rate = learning_rate_schedule(config, steps_per_epoch)
    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum, nesterov=True,
                                    weight_decay=decay)
    if decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate)


def _loss(config):
    keras = import_keras()

    if config.label_smoothing:
        from lenet_keras.models import SmoothedSparseCrossentropy

        return SmoothedSparseCrossentropy(config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def build_for_config(config, bundle):
    """The compiled model a config describes, for the bundle's input and classes."""
    import_keras()  # quietly, before models.py imports keras
    from lenet_keras.models import build_model

    model = build_model(config.model, bundle.image_shape, len(bundle.class_names))
    steps = max(1, bundle.num_train // config.batch_size)
    model.compile(
        optimizer=_optimizer(config, steps),
        loss=_loss(config),
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
        # MirroredStrategy fails in Keras 3's multi-step loop ("You must feed a value
        # for placeholder tensor", keras-team/keras issue 19246, open): one step per call.
        steps_per_execution=1 if config.distribute == "mirrored" else config.steps_per_execution,
    )
    return model


def load_bundle(config, placement=None, **overrides):
    """The DatasetBundle a config describes (same seed, so the same splits).

    A local source is read, prepared and checked against the model (image size, number
    of classes) with numpy only, before the input pipelines (and TensorFlow) exist. The
    pipelines are tf.data on the TensorFlow backend, ``feed.ArrayBatches`` on the others
    (no TensorFlow needed); ``placement`` shards them for a data-parallel run.
    """
    return build_bundle(config, *read_source(config, **overrides), placement)


def read_source(config, **overrides):
    """(options, PreparedArrays) of a local source, read and checked with numpy only;
    (options, None) for a TFDS name."""
    from lenet_keras.data import prepare_arrays, source_kind
    from lenet_keras.registry import check_input

    options = dict(
        dataset=config.dataset, batch_size=config.batch_size, image_size=config.image_size,
        color=config.color, val_split=config.val_split, seed=config.seed,
        augment=config.augment, positive_class=config.positive_class,
        data_dir=config.data_dir, manual_dir=config.manual_dir,
    )
    options.update(overrides)
    if source_kind(options["dataset"]) == "tfds":
        from lenet_keras.devices import require_tensorflow

        require_tensorflow(f"the TFDS dataset '{options['dataset']}'")
        return options, None
    prepared = prepare_arrays(
        options["dataset"], image_size=options["image_size"], color=options["color"],
        val_split=options["val_split"], seed=options["seed"],
        positive_class=options["positive_class"])
    check_input(config.model, prepared.image_shape, len(prepared.class_names))
    return options, prepared


def build_bundle(config, options, prepared, placement=None):
    """Input pipelines over what ``read_source`` returned, for the active backend."""
    from lenet_keras.data import array_bundle, load_dataset
    from lenet_keras.devices import active_backend, plain_float32

    if prepared is None:
        return load_dataset(options.pop("dataset"), **options)
    shard, multiple = (0, 1), 1
    if placement is not None:
        shard, multiple = (placement.process_id, placement.processes), placement.replicas
    with plain_float32():  # augmentation layers compute in float32 whatever the policy
        if active_backend() == "tensorflow":
            bundle = array_bundle(prepared, batch_size=options["batch_size"],
                                  augment=options["augment"], seed=options["seed"])
            if placement is not None and placement.strategy is not None:
                _one_worker(bundle)
            return bundle
        from lenet_keras.feed import feed_bundle

        return feed_bundle(prepared, batch_size=options["batch_size"],
                           augment=options["augment"], seed=options["seed"],
                           shard=shard, multiple=multiple)


def _one_worker(bundle):
    """MirroredStrategy splits every batch over the local devices; there are no other
    workers to shard files or data between (which TensorFlow warns about each epoch)."""
    tf = import_tensorflow()

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    for split in ("train", "val", "test"):
        if getattr(bundle, split) is not None:
            setattr(bundle, split, getattr(bundle, split).with_options(options))


def evaluate_model(model, dataset):
    """(loss, accuracy) of a compiled or uncompiled classifier on a dataset."""
    keras = import_keras()

    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    loss, accuracy = model.evaluate(dataset, verbose=0)
    return float(loss), float(accuracy)


class RunFinished(Exception):
    """The run directory already holds a finished run (its metrics are attached)."""

    def __init__(self, run_dir, metrics):
        super().__init__(f"run '{run_dir}' is already finished")
        self.run_dir, self.metrics = run_dir, metrics


def _comparable(config):
    return {k: v for k, v in asdict(config).items() if k != "created"}


def check_run_dir(config, run_dir, overwrite=False):
    """What an existing run directory means for this fit; returns the config to train.

    New or empty directory: train. Finished run: RunFinished unless overwrite. Unfinished
    run: resume, but only with the same config. Anything else: refuse, never clobber.
    """
    run_dir = runs.check_output_dir(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInput(f"'{run_dir}' is a file, not a run directory; choose another --run-dir")
    if not run_dir.exists() or not any(run_dir.iterdir()) or overwrite and runs.is_run_dir(run_dir):
        return config
    if not runs.is_run_dir(run_dir):
        raise BadInput(f"'{run_dir}' exists and is not a run directory; choose a new --run-dir")
    previous = runs.load_config(run_dir)
    if runs.is_finished(run_dir):
        raise RunFinished(run_dir, runs.read_metrics(run_dir))
    runs.read_history(run_dir)  # a damaged history.csv fails now, not after TensorFlow loads
    if _comparable(previous) != _comparable(config):
        changed = [k for k, v in _comparable(config).items() if _comparable(previous).get(k) != v]
        raise BadInput(
            f"'{run_dir}' holds an unfinished run with other options ({', '.join(changed)}); "
            "rerun the same command to resume, or pass --overwrite to start again"
        )
    return previous  # resume: keep the original creation time


def train(config, run_dir=None, log=print, overwrite=False):
    """Train ``config`` into ``run_dir``; returns the metrics written to metrics.json
    (plus ``run_dir``).

    Args:
        config: a TrainConfig (model, dataset, epochs, backend, distribute, precision...).
        run_dir: where to write the run (default: runs/<model>-<dataset>-<time>/).
        log: called with each progress line.
        overwrite: retrain a finished run from scratch.

    Rerunning with the same config and run_dir resumes an interrupted run from its last
    completed epoch (weights, optimizer state, learning-rate schedule, history). A
    finished run raises RunFinished unless ``overwrite``. Bad input raises BadInput before
    anything is written; what needs no TensorFlow is checked before TensorFlow loads.

    The backend is ``config.backend`` (default: KERAS_BACKEND, else tensorflow); keras
    must not have been imported on another one (set KERAS_BACKEND before importing it).
    In a multi-process data-parallel run, process 0 writes the run directory; another
    process writes only to a ``run_dir`` of its own (one process 0 does not write).

    Example:
        >>> metrics = train(TrainConfig(model="lenet5", epochs=3), "runs/quick")
    """
    from lenet_keras import devices
    from lenet_keras.data import source_kind

    config = config.check().resolved()
    source_kind(config.dataset)  # a missing path fails here
    devices.select_backend(config.backend)  # before keras is imported
    own_run_dir = run_dir is not None
    run_dir = Path(run_dir) if own_run_dir else runs.default_run_dir(config)
    if devices.process_index_from_env() == 0:  # process 0 checks before waiting for others
        config = check_run_dir(config, run_dir, overwrite)
    options, prepared = read_source(config)  # local data is read and checked (numpy only)

    placement = devices.place(config)  # imports keras; joins the other processes
    token = _run_token(placement)  # None unless several processes train
    writes = _claim_run_dir(placement, run_dir, own_run_dir, token)
    if writes and not placement.is_chief:
        config = check_run_dir(config, run_dir, overwrite)
    bundle = build_bundle(config, options, prepared, placement)

    keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    with placement.scope():  # MirroredStrategy creates its variables here
        model = build_for_config(config, bundle)
    if not writes:
        return _fit_without_writing(config, run_dir, bundle, model, log, placement)
    run_dir.mkdir(parents=True, exist_ok=True)
    with runs.RunLock(run_dir):
        if overwrite:
            runs.clear_run(run_dir)
        if token is not None and placement.is_chief:
            _mark_shared(run_dir, token)  # again: --overwrite cleared it
        return _fit(config, run_dir, bundle, model, log, placement)


# A run directory written by process 0 of a multi-process run holds this file, with a
# number all processes of that run agree on: a process that finds it in its own
# --run-dir shares the directory with process 0 and leaves the writing to it.
SHARED_MARK = ".process0"


def _run_token(placement):
    """A random number process 0 draws and every process of the run receives (None for
    a single process): it tells a directory this run's process 0 writes."""
    if placement.processes == 1:
        return None
    import random

    from lenet_keras import devices

    return devices.agree(random.randrange(1, 2**31))


def _claim_run_dir(placement, run_dir, own_run_dir, token):
    """Whether this process writes run_dir: process 0 always; another process only a
    --run-dir of its own, one that does not hold process 0's mark of this run."""
    from lenet_keras import devices

    if token is None:
        return True
    if placement.is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        _mark_shared(run_dir, token)
    devices.barrier("lenet_keras run dir marked")
    if placement.is_chief:
        return True
    mark = run_dir / SHARED_MARK
    shared = mark.is_file() and mark.read_text().strip() == str(token)
    return own_run_dir and not shared


def _mark_shared(run_dir, token):
    runs.write_atomic(run_dir / SHARED_MARK, f"{token}\n")


def _fit_without_writing(config, run_dir, bundle, model, log, placement):
    """A data-parallel process that leaves the run directory to process 0.

    It still runs every callback, into a scratch directory: with JAX every computation
    on the model's (global) arrays, reading the learning rate for history.csv included,
    is one program that all processes must run together. A resumed run restores from
    process 0's backup, so all processes start at the same epoch.
    """
    import tempfile

    restore = run_dir / "backup" if (run_dir / SHARED_MARK).is_file() else None
    with tempfile.TemporaryDirectory(prefix=f"lenet_keras-process{placement.process_id}-") as scratch:
        metrics = _fit(config, Path(scratch), bundle, model, log, placement, restore_from=restore,
                       shown_dir=f"process {placement.process_id} writes no files")
    return {"run_dir": None, "process_id": placement.process_id,
            "train_seconds": metrics["train_seconds"],
            "train_images_per_second": metrics["train_images_per_second"]}


def _callbacks(config, run_dir, monitor, twin=None, log=print, restore_from=None):
    """(callbacks for fit, the timer, the best-model checkpoint), in the order they must run."""
    keras = import_keras()

    from lenet_keras.callbacks import (
        BestModelCheckpoint, HistoryCSV, RestoreOnly, ResumeState, TrainingTimer,
    )
    from lenet_keras.devices import tensorflow_available

    timer = TrainingTimer(config.batch_size)
    checkpoint = BestModelCheckpoint(run_dir / "model.keras", monitor, twin=twin)
    # A data-parallel process sharing process 0's run: resume from process 0's backup.
    restore = [RestoreOnly(str(restore_from))] if restore_from is not None else []
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        timer,
        # history and best model are saved before the backup: a kill between the two
        # makes the resumed run redo that epoch, so rows never go missing.
        HistoryCSV(run_dir),
        checkpoint,
        *restore,
        # Kept until metrics.json exists (deleted below), so a kill during the final
        # evaluation resumes with nothing left to train. Written atomically, so a kill
        # (even Ctrl-C) while it is written leaves the previous state to resume from.
        ResumeState(run_dir / "backup"),
    ]
    if tensorflow_available():  # Keras writes TensorBoard logs with tf.summary
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                     write_graph=False))
    else:
        log("no TensorBoard logs: they need TensorFlow (pip install tensorflow)")
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.early_stopping, mode="max"))
    return callbacks, timer, checkpoint


def _float32_twin(config, bundle):
    """The model.keras a mixed-precision run saves: the same network, float32, built
    outside any distribution (its weights are copied in at each save)."""
    from lenet_keras.devices import plain_float32
    from lenet_keras.models import build_model

    with plain_float32():
        return build_model(config.model, bundle.image_shape, len(bundle.class_names))


def _fit(config, run_dir, bundle, model, log, placement, restore_from=None, shown_dir=None):
    keras = import_keras()

    if bundle.skipped_files:
        shown = ", ".join(bundle.skipped_files[:5])
        log(f"skipped {len(bundle.skipped_files)} unreadable file(s): {shown}"
            + (" ..." if len(bundle.skipped_files) > 5 else ""))
    runs.write_config(run_dir, config)
    runs.write_labels(run_dir, bundle.class_names)
    log(f"{config.model} ({model.count_params():,} params) on {bundle.name}: "
        f"{bundle.num_train} train / {bundle.num_val} val / {bundle.num_test} test images "
        f"{bundle.image_shape}, {len(bundle.class_names)} classes -> "
        + (shown_dir or str(run_dir)))
    log(placement.summary())
    if config.recipe_changes():
        # Say so when a model's registry recipe (or a flag) changes the training.
        log(f"recipe: {config.recipe_changes()}")

    monitor = "val_accuracy" if bundle.val is not None else "accuracy"
    twin = _float32_twin(config, bundle) if config.precision != "float32" else None
    callbacks, timer, checkpoint = _callbacks(config, run_dir, monitor, twin, log, restore_from)
    started = time.perf_counter()
    model.fit(
        bundle.train,
        validation_data=bundle.val,
        epochs=config.epochs,
        callbacks=callbacks,
        class_weight=bundle.class_weight,
        shuffle=False,  # the pipeline shuffles (seeded); Keras cannot shuffle a Dataset
        verbose=1 if os.isatty(1) else 2,
    )
    train_seconds = time.perf_counter() - started
    # Back to plain float32 on no distribution: the evaluation below runs in each process
    # on its own, and later models built in this process are not mixed or distributed.
    keras.distribution.set_distribution(None)
    keras.config.set_dtype_policy("float32")

    history = runs.read_history(run_dir)
    stopped_on_nan = any(not math.isfinite(r.get("loss", 0.0)) for r in history)
    if stopped_on_nan:
        log(f"loss became NaN in epoch {len(history)}: training stopped; "
            + (f"keeping the best model (epoch {checkpoint.best_epoch})" if checkpoint.best_epoch
               else "no epoch finished with finite weights"))
    if not (run_dir / "model.keras").exists():
        raise BadInput("training produced no usable model (NaN loss in the first epoch); "
                       "lower --learning-rate")
    # model.keras is float32 (layers record their policy), whatever precision trained it.
    best = runs.load_model(run_dir / "model.keras")
    test_loss, test_accuracy = evaluate_model(best, bundle.test)
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "epochs": len(history),
        "best_epoch": checkpoint.best_epoch,
        # This process's training time; a resumed run counts only the part it ran.
        "train_seconds": round(train_seconds, 3),
        "train_images_per_second": round(timer.images_per_second, 1),
        "compile_seconds": round(timer.compile_seconds or 0.0, 3),
        "params": int(model.count_params()),
        "num_train": bundle.num_train,
        "num_test": bundle.num_test,
        "skipped_files": len(bundle.skipped_files),
        "stopped_on_nan": stopped_on_nan,
        "keras_version": keras.__version__,
        **placement.metrics(),  # backend, devices, replicas, processes, distribute, precision
        "python": platform.python_version(),
    }
    runs.write_metrics(run_dir, metrics)
    import shutil

    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return {**metrics, "run_dir": str(run_dir)}
