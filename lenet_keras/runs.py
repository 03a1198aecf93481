"""The run directory: what ``fit`` writes and every other command reads.

    config.json      the TrainConfig (everything needed to rebuild the run)
    labels.txt       one class name per line, in index order
    history.csv      one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy, lr
    model.keras      the best epoch (by validation accuracy)
    metrics.json     test_accuracy, test_loss, epochs, train_seconds, ...; a run is
                     finished when this file exists
    tensorboard/     TensorBoard logs
    backup/          BackupAndRestore state while a run is unfinished (resume)
    .lock            held (flock) by the fit writing the run

Every file is written to a temporary name and renamed, so a reader never sees half of
one. Nothing here imports TensorFlow, except ``load_model``.
"""

import csv
import json
import os
import re
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

from lenet_keras.config import TrainConfig
from lenet_keras.errors import BadInput, atomic_path, first_line, write_atomic
from lenet_keras.quiet import import_keras
from lenet_keras.sources import dataset_name

RUNS_ROOT = Path("runs")
LOCK_FILE = ".lock"
# A run directory written by process 0 of a multi-process run holds this file, with a
# number all processes of that run agree on: a process that finds it in its own
# --run-dir shares the directory with process 0 and leaves the writing to it.
SHARED_MARK = ".process0"
# What a folder holds before a run has written anything (the lock, process 0's mark): a
# folder holding only these is still an empty run folder.
BOOKKEEPING = (LOCK_FILE, SHARED_MARK)
# Everything the package writes into a run folder: fit's files, evaluate's, explain's and
# plot-history's figures, the bookkeeping. ``--overwrite`` clears these and nothing else,
# and refuses a folder that holds anything more.
RUN_ENTRIES = ("config.json", "labels.txt", "history.csv", "model.keras", "metrics.json",
               "tensorboard", "backup", *BOOKKEEPING, "confusion_matrix.png",
               "samples.png", "explained.png", "history.png")
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]


def default_run_dir(config, root=RUNS_ROOT):
    """runs/<model>-<dataset>-<timestamp>/ (the dataset's name cut to 64 safe characters:
    a folder may be called anything, up to 255 bytes)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_name(config.dataset))[:64] or "data"
    return Path(root) / f"{config.model}-{name}-{stamp}"


# The longest path a run writes below its directory (a backup state being written).
LONGEST_RUN_FILE = "backup/.epoch-000000.tmp-xxxxxxxx/state.weights.h5"


def check_output_dir(path, option="--run-dir", longest=LONGEST_RUN_FILE):
    """BadInput (one line, before anything is written) for a directory that cannot be
    created and written: a name longer than the file system allows, a path through a
    file, or a parent folder that is not writable."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    name_max = 255
    for part in absolute.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            raise BadInput(f"{option} '{str(path)[:60]}...': the folder name '{part[:20]}...' is "
                           f"too long ({len(os.fsencode(part))} bytes; at most {name_max})")
    path_max = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    total = len(os.fsencode(str(absolute / longest)))
    if total >= path_max:
        raise BadInput(f"{option} '{str(path)[:60]}...' is too long: its files' paths would "
                       f"be {total} bytes, at most {path_max - 1} are allowed")
    existing = absolute
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise BadInput(f"cannot write {option} '{path}': '{existing}' is a broken "
                           "symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise BadInput(f"cannot write {option} '{path}': '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write {option} '{path}': '{existing}' is not writable "
                       "(permission denied)")
    return path


def is_run_dir(path):
    return (Path(path) / "config.json").is_file()


def is_finished(path):
    return (Path(path) / "metrics.json").is_file()


def _own_entry(name):
    """One of RUN_ENTRIES, or a temporary file atomic_path left beside one of them."""
    return name in RUN_ENTRIES or any(name.startswith(f".{entry}.") and ".tmp" in name
                                      for entry in RUN_ENTRIES)


def foreign_entries(run_dir):
    """Names in ``run_dir`` that the package never writes (a project's .git, sources...)."""
    return sorted(entry.name for entry in Path(run_dir).iterdir() if not _own_entry(entry.name))


def check_clearable(run_dir):
    """BadInput unless ``run_dir`` is a run folder --overwrite may clear: a config.json
    that reads as a run's, and nothing that fit, evaluate or plot-history did not write."""
    load_config(run_dir)
    foreign = foreign_entries(run_dir)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise BadInput(f"--overwrite refused: '{run_dir}' holds {len(foreign)} entries fit did "
                       f"not write ({shown}); it is not only a run folder: choose another --run-dir")


def in_progress(run_dir):
    """True while a fit holds the run's lock (is writing it)."""
    import fcntl

    try:
        handle = open(Path(run_dir) / LOCK_FILE)
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def check_not_training(run_dir, what="export"):
    """BadInput while a fit is still writing ``run_dir``: its model.keras is a
    half-trained epoch's."""
    if in_progress(run_dir):
        raise BadInput(f"run '{run_dir}' is still training (a fit holds its lock); wait for it "
                       f"to finish before you {what} it, or pass another --run-dir")


def latest_run_dir(root=RUNS_ROOT):
    """The most recently created run under root, or BadInput if there is none."""
    runs = [p for p in Path(root).glob("*") if is_run_dir(p)] if Path(root).is_dir() else []
    if not runs:
        raise BadInput(f"no runs found in '{root}/'; train one first with: lenet-keras fit")
    return max(runs, key=lambda p: (p / "config.json").stat().st_mtime)


def resolve_run_dir(run_dir=None):
    """An explicit run directory (which must hold a run), or the latest one."""
    if run_dir is None:
        return latest_run_dir()
    if not is_run_dir(run_dir):
        raise BadInput(f"'{run_dir}' holds no run (no config.json); pass a directory made by fit")
    return Path(run_dir)


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
    run_dir = check_output_dir(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInput(f"'{run_dir}' is a file, not a run directory; choose another --run-dir")
    if not run_dir.exists() or all(e.name in BOOKKEEPING for e in run_dir.iterdir()):
        return config
    if overwrite and is_run_dir(run_dir):
        check_clearable(run_dir)
        return config
    if not is_run_dir(run_dir):
        raise BadInput(f"'{run_dir}' exists and is not a run directory; choose a new --run-dir")
    previous = load_config(run_dir)
    if is_finished(run_dir):
        raise RunFinished(run_dir, read_metrics(run_dir))
    read_history(run_dir)  # a damaged history.csv fails now, not after TensorFlow loads
    if config.precision == "auto":  # a run resumes in the precision it started in
        config = replace(config, precision=previous.precision)
    if _comparable(previous) != _comparable(config):
        changed = [k for k, v in _comparable(config).items() if _comparable(previous).get(k) != v]
        raise BadInput(
            f"'{run_dir}' holds an unfinished run with other options ({', '.join(changed)}); "
            "rerun the same command to resume, or pass --overwrite to start again"
        )
    return previous  # resume: keep the original creation time


# ---------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------


def load_config(run_dir):
    path = Path(run_dir) / "config.json"
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object of options")
        config = TrainConfig.from_json(json.dumps(data))
        return config.check()
    except (OSError, ValueError, TypeError) as error:  # BadInput from check() included
        raise BadInput(f"cannot read '{path}': {first_line(error)}") from None


def write_config(run_dir, config):
    write_atomic(Path(run_dir) / "config.json", config.to_json())


def read_labels(run_dir, num_classes=0):
    """labels.txt: one class name per line, checked (distinct, none blank, at least
    ``num_classes``, e.g. the model's outputs)."""
    from lenet_keras.checks import check_class_names, read_names_file

    path = Path(run_dir) / "labels.txt"
    return check_class_names(read_names_file(path), num_classes, f"'{path}'")


def write_labels(run_dir, class_names):
    write_atomic(Path(run_dir) / "labels.txt", "\n".join(class_names) + "\n")


def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot read '{path}': {first_line(error)}") from None


def write_metrics(run_dir, metrics):
    write_atomic(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2))


def read_history(run_dir):
    """history.csv as a list of dicts (floats; epoch as int)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        history = [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()
                    if v not in ("", None)} for row in rows]
        if any("epoch" not in row for row in history):
            raise ValueError("a row without an epoch")
        return history
    except (OSError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read '{path}': {first_line(error)}; it is written by fit, "
                       "one row per epoch") from None


def write_history(run_dir, rows):
    with atomic_path(Path(run_dir) / "history.csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, HISTORY_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def clear_run(run_dir):
    """Delete what the package wrote into a run folder (RUN_ENTRIES, keeping the lock the
    caller holds), after checking that it holds nothing else."""
    import shutil

    check_clearable(run_dir)
    for entry in Path(run_dir).iterdir():
        if entry.name != LOCK_FILE and _own_entry(entry.name):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


class RunLock:
    """An exclusive flock on run_dir/.lock: a second fit on the same directory is refused.

    The kernel drops the lock when the process dies (even by SIGKILL), so a crashed run
    never leaves a stale lock behind.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_FILE

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


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


def load_model(path, safe_mode=True):
    """Load a .keras file in safe mode (no arbitrary code from a downloaded model).

    Raises BadInput for a missing or corrupt file, and for a model that needs unsafe
    deserialization (Python code such as a Lambda layer) unless ``safe_mode=False``.
    """
    keras = import_keras()
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
        raise BadInput(f"cannot load '{path}' as a Keras model: {first_line(error, 160)}") from None
