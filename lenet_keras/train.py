"""Training: a config dataclass, Keras callbacks, and ``fit`` into a run directory.

A run directory holds::

    config.json      the TrainConfig (everything needed to rebuild the run)
    labels.txt       one class name per line, in index order
    history.csv      one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, lr
    model.keras      the best epoch (by validation accuracy)
    metrics.json     test_accuracy, test_loss, epochs, train_seconds, ...
    tensorboard/     TensorBoard logs
    backup/          BackupAndRestore state while a run is unfinished (resume)
"""

import csv
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from lenet_keras.errors import BadInput

RUNS_ROOT = Path("runs")
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]


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
    augment: bool = False
    positive_class: str = None
    early_stopping: int = 0  # patience in epochs; 0 turns it off
    data_dir: str = None
    manual_dir: str = None
    # No XLA: on CPU, XLA's convolutions train LeNet-5 ~3x slower than TensorFlow's
    # oneDNN kernels (benchmarks/README.md); Keras itself turns XLA off on CPU-only hosts.
    jit_compile: bool = False
    # Train steps run in one graph call per 64 batches: less Python and dispatch per step,
    # ~1.15x images/s on 2 CPU cores (more when the CPU is busy); same results as 1.
    steps_per_execution: int = 64
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_json(self):
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------


def default_run_dir(config, root=RUNS_ROOT):
    """runs/<model>-<dataset>-<timestamp>/"""
    from lenet_keras.data import dataset_name

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.model}-{dataset_name(config.dataset)}-{stamp}"


def is_run_dir(path):
    return (Path(path) / "config.json").is_file()


def latest_run_dir(root=RUNS_ROOT):
    """The most recently created run under root, or BadInput if there is none."""
    runs = [p for p in Path(root).glob("*") if is_run_dir(p)] if Path(root).is_dir() else []
    if not runs:
        raise BadInput(f"no runs found in '{root}/'; train one first with: python cli.py fit")
    return max(runs, key=lambda p: (p / "config.json").stat().st_mtime)


def resolve_run_dir(run_dir=None):
    """An explicit run directory (which must hold a run), or the latest one."""
    if run_dir is None:
        return latest_run_dir()
    if not is_run_dir(run_dir):
        raise BadInput(f"'{run_dir}' holds no run (no config.json); pass a directory made by fit")
    return Path(run_dir)


def load_config(run_dir):
    return TrainConfig.from_json((Path(run_dir) / "config.json").read_text())


def read_labels(run_dir):
    return (Path(run_dir) / "labels.txt").read_text().splitlines()


def write_atomic(path, text):
    """Write text to path via a temporary file and rename, so readers never see half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_history(run_dir):
    """history.csv as a list of dicts (floats; epoch as int)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
            for row in rows]


# ---------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------


def _callbacks_module():
    import keras

    class HistoryCSV(keras.callbacks.Callback):
        """Appends one row per finished epoch to history.csv, with the learning rate.

        On a resumed run, rows from the epoch being resumed onwards are dropped first,
        so the file ends with one row per epoch, no duplicates, no gaps.
        """

        def __init__(self, path):
            super().__init__()
            self.path = Path(path)

        def on_train_begin(self, logs=None):
            self._resumed = False

        def on_epoch_begin(self, epoch, logs=None):
            # The first epoch of this process tells where BackupAndRestore resumed:
            # rows from here on belong to epochs about to be run again.
            if not self._resumed:
                self._resumed = True
                self._write([r for r in read_history(self.path.parent) if r["epoch"] <= epoch])

        def on_epoch_end(self, epoch, logs=None):
            # The optimizer evaluates its schedule at the current step: the rate the
            # next epoch starts with.
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}, "lr": lr}
            self._write(read_history(self.path.parent) + [row])

        def _write(self, rows):
            tmp = self.path.with_name(".history.csv.tmp")
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, HISTORY_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, self.path)

    class BestModelCheckpoint(keras.callbacks.Callback):
        """Saves the model to model.keras whenever the monitored metric improves.

        Written to a temporary file and renamed into place, so a crash mid-save never
        leaves a corrupt model.keras. The best value so far is read back from
        history.csv on a resumed run.
        """

        def __init__(self, path, monitor):
            super().__init__()
            self.path, self.monitor = Path(path), monitor
            self.best = -math.inf
            self.best_epoch = None

        def on_train_begin(self, logs=None):
            self._resumed = False

        def on_epoch_begin(self, epoch, logs=None):
            if not self._resumed:
                self._resumed = True
                for row in read_history(self.path.parent):
                    if row["epoch"] <= epoch and row.get(self.monitor, -math.inf) > self.best:
                        self.best, self.best_epoch = row[self.monitor], row["epoch"]

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = logs.get(self.monitor)
            if not math.isfinite(logs.get("loss", 0.0)):
                return  # the weights diverged this epoch: keep the last good model
            if value is None or not math.isfinite(value) or value <= self.best:
                return
            self.best, self.best_epoch = value, epoch + 1
            tmp = self.path.with_name(".model.tmp.keras")
            self.model.save(tmp)
            os.replace(tmp, self.path)

    class TrainingTimer(keras.callbacks.Callback):
        """Times training steps only (no validation, no callbacks at epoch end).

        The first batch of the run includes tracing and XLA compilation; it is reported
        separately as compile_seconds and left out of the throughput. (With
        steps_per_execution > 1, a "batch" here is one execution of that many steps.)
        """

        def __init__(self, batch_size):
            super().__init__()
            self.batch_size = batch_size
            self.step_seconds = 0.0
            self.images = 0
            self.compile_seconds = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            self._batches = 0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if self.compile_seconds is None:
                self.compile_seconds = now - self._start
                self._start = now
                self._first_batch = batch + 1
                return
            self._last_end = now
            # Keras reports the last step an execution would reach with all
            # steps_per_execution steps, even when the epoch's last one runs fewer.
            self._batches = min(batch + 1, self.params.get("steps") or batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            first = getattr(self, "_first_batch", 0) if self.images == 0 else 0
            if self._batches > first:
                self.step_seconds += self._last_end - self._start
                self.images += (self._batches - first) * self.batch_size
            self._first_batch = 0

        @property
        def images_per_second(self):
            return self.images / self.step_seconds if self.step_seconds else 0.0

    return HistoryCSV, BestModelCheckpoint, TrainingTimer


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def _optimizer(config, steps_per_epoch):
    import keras

    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch)
        )
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum, nesterov=True)
    return keras.optimizers.Adam(learning_rate)


def build_for_config(config, bundle):
    """The compiled model a config describes, for the bundle's input and classes."""
    import keras

    from lenet_keras.models import build_model

    try:
        model = build_model(config.model, bundle.image_shape, len(bundle.class_names))
    except ValueError as error:
        raise BadInput(str(error)) from None
    steps = max(1, bundle.num_train // config.batch_size)
    model.compile(
        optimizer=_optimizer(config, steps),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def load_bundle(config, **overrides):
    """The DatasetBundle a config describes (same seed, so the same splits)."""
    from lenet_keras.data import load_dataset

    options = dict(
        batch_size=config.batch_size, image_size=config.image_size, color=config.color,
        val_split=config.val_split, seed=config.seed, augment=config.augment,
        positive_class=config.positive_class, data_dir=config.data_dir,
        manual_dir=config.manual_dir,
    )
    options.update(overrides)
    source = options.pop("dataset", config.dataset)
    return load_dataset(source, **options)


def evaluate_model(model, dataset):
    """(loss, accuracy) of a compiled or uncompiled classifier on a dataset."""
    import keras

    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    loss, accuracy = model.evaluate(dataset, verbose=0)
    return float(loss), float(accuracy)


def load_model(path, safe_mode=True):
    """Load a .keras file in safe mode (no arbitrary code from a downloaded model).

    Raises BadInput for a missing or corrupt file, and for a model that needs unsafe
    deserialization (Python code such as a Lambda layer) unless ``safe_mode=False``.
    """
    import keras

    import lenet_keras.models  # noqa: F401  registers the custom layers

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"model file '{path}' does not exist")
    try:
        return keras.models.load_model(path, safe_mode=safe_mode, compile=False)
    except Exception as error:  # noqa: BLE001  keras raises many types for bad files
        if "safe_mode" in str(error) or "unsafe" in str(error).lower():
            raise BadInput(
                f"'{path}' contains Python code (e.g. a Lambda layer) that safe mode will "
                "not run; pass --unsafe only if you trust where it came from"
            ) from None
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise BadInput(f"cannot load '{path}' as a Keras model: {reason}") from None


class RunFinished(Exception):
    """The run directory already holds a finished run (its metrics are attached)."""

    def __init__(self, run_dir, metrics):
        super().__init__(f"run '{run_dir}' is already finished")
        self.run_dir, self.metrics = run_dir, metrics


def _comparable(config):
    return {k: v for k, v in asdict(config).items() if k != "created"}


def _check_resumable(config, run_dir, overwrite):
    """Decide what an existing run directory means for this fit.

    New or empty directory: train. Finished run: RunFinished unless overwrite. Unfinished
    run: resume, but only with the same config. Anything else: refuse, never clobber.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists() or not any(run_dir.iterdir()) or overwrite and is_run_dir(run_dir):
        return config
    if not is_run_dir(run_dir):
        raise BadInput(f"'{run_dir}' exists and is not a run directory; choose a new --run-dir")
    previous = load_config(run_dir)
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        raise RunFinished(run_dir, json.loads(metrics_path.read_text()))
    if _comparable(previous) != _comparable(config):
        changed = [k for k, v in _comparable(config).items() if _comparable(previous).get(k) != v]
        raise BadInput(
            f"'{run_dir}' holds an unfinished run with other options ({', '.join(changed)}); "
            "rerun the same command to resume, or pass --overwrite to start again"
        )
    return previous  # resume: keep the original creation time


class _RunLock:
    """An exclusive flock on run_dir/.lock: a second fit on the same directory is refused.

    The kernel drops the lock when the process dies (even by SIGKILL), so a crashed run
    never leaves a stale lock behind.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / ".lock"

    def __enter__(self):
        import fcntl

        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise BadInput(f"another fit is already writing to '{self.path.parent}'; "
                           "wait for it or choose another --run-dir") from None
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _clear_run(run_dir):
    import shutil

    for entry in Path(run_dir).iterdir():
        if entry.name != ".lock":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def train(config, run_dir, log=print, overwrite=False):
    """Train ``config`` into ``run_dir`` and return the metrics written to metrics.json.

    Rerunning with the same config and run_dir resumes an interrupted run from its last
    completed epoch (weights, optimizer state, learning-rate schedule, history). A
    finished run raises RunFinished unless ``overwrite``. Bad input raises BadInput before
    anything is written.
    """
    import keras

    HistoryCSV, BestModelCheckpoint, TrainingTimer = _callbacks_module()
    run_dir = Path(run_dir)
    config = _check_resumable(config, run_dir, overwrite)
    keras.utils.set_random_seed(config.seed)
    bundle = load_bundle(config)
    model = build_for_config(config, bundle)  # bad model/size/class options fail here

    run_dir.mkdir(parents=True, exist_ok=True)
    with _RunLock(run_dir):
        if overwrite:
            _clear_run(run_dir)
        return _fit(config, run_dir, bundle, model, log, HistoryCSV, BestModelCheckpoint,
                    TrainingTimer)


def _fit(config, run_dir, bundle, model, log, HistoryCSV, BestModelCheckpoint, TrainingTimer):
    import keras

    if bundle.skipped_files:
        shown = ", ".join(bundle.skipped_files[:5])
        log(f"skipped {len(bundle.skipped_files)} unreadable file(s): {shown}"
            + (" ..." if len(bundle.skipped_files) > 5 else ""))
    write_atomic(run_dir / "config.json", config.to_json())
    write_atomic(run_dir / "labels.txt", "\n".join(bundle.class_names) + "\n")
    log(f"{config.model} ({model.count_params():,} params) on {bundle.name}: "
        f"{bundle.num_train} train / {bundle.num_val} val / {bundle.num_test} test images "
        f"{bundle.image_shape}, {len(bundle.class_names)} classes -> {run_dir}")

    monitor = "val_accuracy" if bundle.val is not None else "accuracy"
    timer = TrainingTimer(config.batch_size)
    checkpoint = BestModelCheckpoint(run_dir / "model.keras", monitor)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        timer,
        # history and best model are saved before the backup: a kill between the two
        # makes the resumed run redo that epoch, so rows never go missing.
        HistoryCSV(run_dir / "history.csv"),
        checkpoint,
        # Kept until metrics.json exists (deleted below), so a kill during the final
        # evaluation resumes with nothing left to train. double_checkpoint survives a
        # kill in the middle of writing the backup itself.
        keras.callbacks.BackupAndRestore(
            str(run_dir / "backup"), delete_checkpoint=False, double_checkpoint=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
    ]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.early_stopping, mode="max"))

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

    history = read_history(run_dir)
    stopped_on_nan = any(not math.isfinite(r.get("loss", 0.0)) for r in history)
    if stopped_on_nan:
        log(f"loss became NaN in epoch {len(history)}: training stopped; "
            + (f"keeping the best model (epoch {checkpoint.best_epoch})" if checkpoint.best_epoch
               else "no epoch finished with finite weights"))
    if not (run_dir / "model.keras").exists():
        raise BadInput("training produced no usable model (NaN loss in the first epoch); "
                       "lower --learning-rate")
    best = load_model(run_dir / "model.keras")
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
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
    }
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    import shutil

    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return metrics
