"""Errors the CLI turns into one clear line, and the small helpers every module shares
for writing files safely and reporting failures in one line."""

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


class BadInput(ValueError):
    """The user asked for something that cannot work (unknown name, missing path, ...).

    The message is one line that names the problem and, where possible, the fix. The CLI
    prints it as ``Error: ...`` and exits 2. A ValueError, so library callers can catch
    it as one.
    """


def first_line(error, limit=200):
    """The first line of an exception's message (or its type name), at most ``limit``
    characters: third-party errors often carry whole tracebacks or graph dumps."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def current_umask():
    """The process umask, read without changing it (Linux: /proc; elsewhere set and
    restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path, directory=False):
    """mkstemp/mkdtemp make private files (0600/0700): give ``path`` the mode a plain
    open()/mkdir() would, so other users and containers can read run files."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


# Out of space or quota: said with the file and the space left, not as an internal error.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space_error(error, path):
    """BadInput naming ``path`` and the free space when ``error`` is a full disk (h5py
    and zipfile report it in their own words), else None."""
    if getattr(error, "errno", None) not in NO_SPACE and "No space left" not in str(error):
        return None
    try:
        free = f"{shutil.disk_usage(Path(path).parent).free / 2**20:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return BadInput(f"no space left on the device to write '{path}' ({free}); free some space "
                    "or write elsewhere")


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it into place only if the block
    succeeds, so readers never see a half-written file (and a failure leaves nothing).
    The file gets the umask's mode; a full disk is BadInput naming ``path``."""
    path = Path(path)
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                       dir=path.parent)
    except OSError as error:
        raise no_space_error(error, path) or BadInput(
            f"cannot write '{path}': {error.strerror or error}") from None
    os.close(handle)
    tmp = Path(tmp)
    try:
        honour_umask(tmp)
        yield tmp
        os.replace(tmp, path)
    except Exception as error:  # noqa: BLE001  only a full disk is translated
        full = no_space_error(error, path)
        if full is None:
            raise
        raise full from None
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(folder, what):
    """BadInput (before any work) unless files can be created in ``folder``: a read-only
    run folder made evaluate compute for a minute, then fail on its first figure."""
    folder = Path(folder)
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only_mount(folder) else "permission denied"
        raise BadInput(f"cannot write {what} into '{folder}' ({reason}); "
                       "pass --out to write elsewhere")


def _read_only_mount(folder):
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_atomic(path, text):
    """Write text to path via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
