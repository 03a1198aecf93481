"""Export folders: where they go, how one is written safely, and which file of one to use
(as ``runs.py`` owns run folders).

An export is built in a staging folder beside its destination and renamed into place
(``make_staging_dir``, ``publish``); a marker file says which folders, and which entries
in them, this package wrote, so it never replaces or deletes anything else.
"""

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from lenet_keras.errors import BadInput
from lenet_keras.formats import BY_NAME, SERVE_ORDER, by_speed

EXPORTS_ROOT = Path("exports")


# TensorFlow reads a SavedModel's variables path as a glob: an export path never holds these.
GLOB_CHARACTERS = "[]*?\\"


def default_export_dir(run_dir, root=EXPORTS_ROOT):
    """exports/<run-name>/ (wildcard characters of the run's name as '_')."""
    name = Path(run_dir).resolve().name
    return Path(root) / "".join("_" if c in GLOB_CHARACTERS else c for c in name)


def latest_export_dir(root=EXPORTS_ROOT):
    """The most recent export under root (by its report.json), or None."""
    root = Path(root)
    exports = [p for p in root.iterdir() if (p / "report.json").is_file()] if root.is_dir() else []
    if not exports:
        return None
    return max(exports, key=lambda p: (p / "report.json").stat().st_mtime)


def model_in_export(export_dir):
    """The file of an export directory to serve: the fastest LiteRT file its report.json
    timed, else the first in formats.SERVE_ORDER (int8 .tflite first: what ships);
    ``formats.by_speed`` decides."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise BadInput(f"export directory '{export_dir}' does not exist")
    for fmt in by_speed(verified_latencies(export_dir)):
        if (export_dir / fmt.file).exists():
            return export_dir / fmt.file
    raise BadInput(f"'{export_dir}' holds no model ({', '.join(f.file for f in SERVE_ORDER)}); "
                   "make one with: lenet-keras export --tflite")


def verified_latencies(export_dir):
    """{format: latency_us} of the files report.json verified and timed that are still
    the files it measured (same bytes); {} without a readable report."""
    try:
        entries = json.loads((Path(export_dir) / "report.json").read_text())["formats"]
        measured = {name: entry["latency_us"] for name, entry in entries.items()
                    if name in BY_NAME and (Path(export_dir) / BY_NAME[name].file).is_file()
                    and (Path(export_dir) / BY_NAME[name].file).stat().st_size == entry["bytes"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
    return measured


# ---------------------------------------------------------------------------------------
# Destination: build beside it, rename into place
# ---------------------------------------------------------------------------------------


# Written first into every export (and into its staging folder): the package replaces
# or deletes only folders that hold it, and only when every entry in them is one it
# wrote. A user's folder, even one holding a report.json or a saved_model/, is never
# taken for an export.
MARKER = ".lenet-keras-export.json"


def _read_marker(folder):
    try:
        marker = json.loads((folder / MARKER).read_text())
        return marker if isinstance(marker, dict) and marker.get("package") == "lenet_keras" else None
    except (OSError, ValueError):
        return None


def _foreign_entries(folder):
    """Entries of ``folder`` the package did not write there (all of them when it holds
    no marker)."""
    marker = _read_marker(folder)
    written = set(marker.get("files", [])) | {MARKER} if marker else {MARKER}
    entries = sorted(entry.name for entry in folder.iterdir())
    return entries if marker is None else [name for name in entries if name not in written]


def check_destination(out):
    """BadInput unless ``out`` may become an export: new, empty, or a previous export of
    this package holding nothing else. Checked before the model is loaded."""
    from lenet_keras.runs import check_output_dir

    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadInput(f"--out '{out}' exists and is not an export directory; choose another --out")
    check_output_dir(out, option="--out", longest="saved_model/variables/variables.data-00000-of-00001")
    wildcards = sorted({c for c in os.path.abspath(out) if c in GLOB_CHARACTERS})
    if wildcards:
        raise BadInput(f"--out '{out}' holds {' '.join(wildcards)}, which TensorFlow reads as "
                       "wildcards in a SavedModel's path; choose a folder without them")
    if out.exists() and any(out.iterdir()):
        marker, foreign = _read_marker(out), _foreign_entries(out)
        if marker is None:
            raise BadInput(f"--out '{out}' exists and is not an export directory (it holds "
                           f"{', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, and no "
                           f"{MARKER}); choose another --out")
        if foreign:
            raise BadInput(f"--out '{out}' is an export with files added to it "
                           f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); "
                           "move them or choose another --out")


def _remove_stale_staging(out):
    """Delete the ``.NAME.tmp-*`` / ``.NAME.old-*`` folders an interrupted export of ``out``
    left beside it: only real folders (not links) holding the marker, whose process has
    ended."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp-[A-Za-z0-9_]{{8}}|old-\d+)$")
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return
    for folder in siblings:
        if not pattern.match(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        marker = _read_marker(folder)
        # .tmp-: the staging folder of the process in its marker; .old-PID: a previous
        # export that process PID was replacing.
        owner = int(folder.name.rsplit("-", 1)[1]) if ".old-" in folder.name else marker and marker.get("pid")
        if marker is None or _process_alive(owner):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_marker(folder, files=()):
    from lenet_keras import __version__

    (folder / MARKER).write_text(json.dumps({
        "package": "lenet_keras", "version": __version__, "pid": os.getpid(),
        "files": sorted(files)}, indent=2) + "\n")


def make_staging_dir(out):
    check_destination(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        _write_marker(staging)  # first: an interrupted export is recognisable as ours
    except OSError as error:
        raise BadInput(f"cannot write to '{out}': {error.strerror or error}") from None
    # mkdtemp makes the folder private (0700); an export is an ordinary folder.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def publish(staging, out):
    """Move the finished staging directory to ``out``, replacing a previous export."""
    _write_marker(staging, [entry.name for entry in staging.iterdir()])
    check_destination(out)  # again: the user may have added files while we worked
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
