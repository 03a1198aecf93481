"""Keras callbacks that keep a run directory current while ``fit`` runs.

Backend-agnostic (keras ops only). ``training.py`` puts them in this order: history and the
best model are saved before BackupAndRestore's backup, so a kill between the two makes
the resumed run redo that epoch and rows never go missing.
"""

import math
import time
from pathlib import Path

import keras

from lenet_keras.errors import atomic_path
from lenet_keras.runs import read_history, write_history


class HistoryCSV(keras.callbacks.Callback):
    """Appends one row per finished epoch to run_dir/history.csv, with the learning rate.

    On a resumed run, rows from the epoch being resumed onwards are dropped first, so the
    file ends with one row per epoch, no duplicates, no gaps.
    """

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = Path(run_dir)

    def on_train_begin(self, logs=None):
        self._resumed = False

    def on_epoch_begin(self, epoch, logs=None):
        # The first epoch of this process tells where BackupAndRestore resumed: rows from
        # here on belong to epochs about to be run again.
        if not self._resumed:
            self._resumed = True
            write_history(self.run_dir, [r for r in read_history(self.run_dir) if r["epoch"] <= epoch])

    def on_epoch_end(self, epoch, logs=None):
        # The optimizer evaluates its schedule at the current step: the rate the next
        # epoch starts with.
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}, "lr": lr}
        write_history(self.run_dir, read_history(self.run_dir) + [row])


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model to ``path`` (model.keras) whenever the monitored metric improves.

    Written to a temporary file and renamed into place, so a crash mid-save never leaves
    a corrupt model.keras. The best value so far is read back from history.csv on a
    resumed run.
    """

    def __init__(self, path, monitor, twin=None):
        super().__init__()
        self.path, self.monitor = Path(path), monitor
        # Mixed precision: a float32 model of the same network, saved in its place.
        self.twin = twin
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
        saved = self.model
        if self.twin is not None:
            self.twin.set_weights(self.model.get_weights())
            saved = self.twin
        with atomic_path(self.path) as tmp:
            saved.save(tmp)


class RestoreOnly(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that restores and never writes: for a data-parallel process that
    shares process 0's run directory (process 0 writes the backup)."""

    def _save_model(self):
        pass

    def on_train_end(self, logs=None):
        pass


class TrainingTimer(keras.callbacks.Callback):
    """Times training steps only (no validation, no callbacks at epoch end).

    The first batch of the run includes tracing and compilation; it is reported
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
