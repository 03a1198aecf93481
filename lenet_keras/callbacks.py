"""Keras callbacks that keep a run directory current while ``fit`` runs.

Backend-agnostic (keras ops only). ``training.py`` puts them in this order: history and the
best model are saved before BackupAndRestore's backup, so a kill between the two makes
the resumed run redo that epoch and rows never go missing.
"""

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras

from lenet_keras.errors import atomic_path, honour_umask, no_space_error
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
        # An uncompiled float32 model of the same network, saved in its place (mixed
        # precision, distribution and the training loss stay out of model.keras).
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


class ResumeState(keras.callbacks.Callback):
    """The training state after every epoch (weights, optimizer state, epoch), restored
    when a rerun of an interrupted ``fit`` begins; replaces Keras' BackupAndRestore.

    Each state is a folder ``backup/epoch-NNNNNN/`` (``state.weights.h5`` and
    ``state.json``) written under a temporary name, flushed to disk and renamed into
    place, so an interruption at any moment leaves whole states only; the last two are
    kept. On restore the newest state that loads wins, whatever the error with a newer
    one. (BackupAndRestore overwrites ``latest.weights.h5`` in place: Ctrl-C while it is
    written leaves a valid-looking, incomplete HDF5 that raises ValueError, and its
    fallback to the ``.bkp`` copy covers OSError only, so every rerun failed.) States a
    BackupAndRestore left (older runs) are read too.
    """

    KEEP = 2
    PREFIX = "epoch-"

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.restored_epoch = 0

    def _states(self):
        """[(epoch, weights file), ...], newest first: ours, then BackupAndRestore's."""
        states = []
        if self.backup_dir.is_dir():
            for folder in self.backup_dir.glob(f"{self.PREFIX}*"):
                try:
                    meta = json.loads((folder / "state.json").read_text())
                    states.append((int(meta["epoch"]), folder / "state.weights.h5"))
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # not a whole state: ignored (and deleted on the next save)
            for weights, meta in [("latest.weights.h5", "training_metadata.json"),
                                  ("latest.weights.h5.bkp", "training_metadata.json.bkp")]:
                try:
                    epoch = int(json.loads((self.backup_dir / meta).read_text())["epoch"])
                    states.append((epoch, self.backup_dir / weights))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        return sorted(states, key=lambda state: -state[0])

    def on_train_begin(self, logs=None):
        states = self._states()
        if not states:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        # A state that fails half-way may have overwritten some variables: put the fresh
        # ones back before trying an older state (or training from scratch).
        variables = list(self.model.variables) + list(optimizer.variables if optimizer else [])
        fresh = [variable.numpy() for variable in variables]
        for epoch, weights in states:
            try:
                self.model.load_weights(weights)
            except Exception:  # noqa: BLE001  any damage: fall back to an older state
                for variable, value in zip(variables, fresh):
                    variable.assign(value)
                continue
            self.restored_epoch = epoch
            # How Keras' own BackupAndRestore makes fit start at this epoch.
            self.model._initial_epoch = epoch
            return

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        final = self.backup_dir / f"{self.PREFIX}{epoch + 1:06d}"
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=self.backup_dir))
        try:
            honour_umask(staging, directory=True)
            self.model.save_weights(staging / "state.weights.h5")
            (staging / "state.json").write_text(json.dumps({"epoch": epoch + 1}))
            for file in staging.iterdir():
                with open(file, "rb+") as handle:
                    os.fsync(handle.fileno())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
        except Exception as error:  # noqa: BLE001  a full disk: say which file, how much space
            full = no_space_error(error, staging / "state.weights.h5")
            if full is None:
                raise
            raise full from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._prune()

    def _prune(self):
        """Delete all but the newest KEEP states, stale temporary folders and the files
        of a BackupAndRestore this run no longer needs."""
        states = sorted(p.name for p in self.backup_dir.glob(f"{self.PREFIX}*"))
        for name in states[:-self.KEEP]:
            shutil.rmtree(self.backup_dir / name, ignore_errors=True)
        for stale in self.backup_dir.glob(f".{self.PREFIX}*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for name in ("latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
                     "training_metadata.json.bkp"):
            (self.backup_dir / name).unlink(missing_ok=True)


class RestoreOnly(ResumeState):
    """ResumeState that restores and never writes: for a data-parallel process that
    shares process 0's run directory (process 0 writes the states)."""

    def on_epoch_end(self, epoch, logs=None):
        pass


class StopAtAccuracy(keras.callbacks.Callback):
    """Stops ``fit`` at the end of the first epoch whose ``monitor`` (val_accuracy, or
    accuracy without validation data) reaches ``target`` (``fit --target-accuracy``):
    time to accuracy, not a fixed epoch count. That epoch's model is the best so far,
    so the checkpoint before this callback has saved it."""

    def __init__(self, monitor, target):
        super().__init__()
        self.monitor, self.target = monitor, target

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value >= self.target:
            self.model.stop_training = True


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


class EpochReport(keras.callbacks.Callback):
    """Calls ``report(epoch, logs)`` after every epoch (1-based epoch, Keras' logs) and
    stops training when it returns True: how ``tune`` hands validation accuracy to
    Optuna's pruner. Stopping (instead of raising, as optuna-integration's
    KerasPruningCallback does) lets ``fit`` finish the run folder: a pruned trial is a
    normal run, with its best epoch so far as model.keras."""

    def __init__(self, report):
        super().__init__()
        self.report = report

    def on_epoch_end(self, epoch, logs=None):
        if self.report(epoch + 1, dict(logs or {})):
            self.model.stop_training = True
