"""Errors the CLI turns into one clear line, and the small helpers every module shares
for writing files safely and reporting failures in one line."""

import os
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


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it into place only if the block
    succeeds, so readers never see a half-written file (and a failure leaves nothing)."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                   dir=path.parent)
    os.close(handle)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path, text):
    """Write text to path via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
