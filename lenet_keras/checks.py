"""Checks on data where it enters the package: labels, pixels, class names and the
bounds that keep a hostile file from exhausting memory.

Every check raises BadInput with one line that names the array or file and the problem,
before anything is allocated from the file's own claims (headers are checked before the
data behind them is read) and before TensorFlow is imported. numpy only.

    >>> labels = check_labels(archive["y_train"], len(x_train), "y_train in 'data.npz'")
    >>> images = check_pixels(archive["x_train"], "x_train in 'data.npz'")
"""

import unicodedata

import numpy as np

from lenet_keras.errors import BadInput

# One class per output unit; 10,000 is 100x CIFAR-100 and a ~1 MB output layer on
# LeNet's 84 features. Bounds the class-name list a label like 10^9 would otherwise build.
MAX_CLASSES = 10_000
# In-memory sources (.npz, IDX) as their headers declare them, all arrays together:
# preparing them (colour, resize, splits) makes a few copies, on a 24 GB machine.
MAX_DATA_BYTES = 4 * 1024**3
# One image file, checked on its header before decoding: a 12000x12000 PNG of 100 kB
# is 144 M pixels (432 MB as RGB). 50 M covers a 48-megapixel camera.
MAX_IMAGE_PIXELS = 50_000_000


def _gigabytes(count):
    return f"{count / 1024**3:.1f} GB"


def check_data_bytes(nbytes, what):
    """BadInput if an array (or a set of them) declares more bytes than MAX_DATA_BYTES."""
    if nbytes > MAX_DATA_BYTES:
        raise BadInput(f"{what} is too large: {_gigabytes(nbytes)} declared, more than the "
                       f"{_gigabytes(MAX_DATA_BYTES)} an in-memory dataset may hold; use a "
                       "folder of images or a TFDS dataset")


def check_labels(labels, count, what):
    """Class indices -> int64 [N]. Accepts integers, booleans, whole floats and [N, 1]
    columns; refuses one-hot rows, text, NaN, fractions, negatives, indices of
    MAX_CLASSES or more, and a count other than ``count`` (the number of images)."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        raise BadInput(f"{what} has shape {y.shape}: it looks one-hot; store class indices "
                       "instead (y.argmax(axis=1))")
    if y.ndim != 1:
        raise BadInput(f"{what} must be a 1-D array of class indices, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise BadInput(f"{what} must hold integer class indices, got {y.dtype} values")
    if len(y) != count:
        raise BadInput(f"{what} has {len(y)} labels for {count} images")
    if len(y) == 0:
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all():
            raise BadInput(f"{what} holds {y[~finite][0]} labels; labels must be class indices")
        fractional = y != np.floor(y)
        if fractional.any():
            raise BadInput(f"{what} holds the label {y[fractional][0]:g}; labels must be "
                           "whole class indices")
    if y.min() < 0:
        raise BadInput(f"{what} holds a negative label ({y.min():g}); labels must be class "
                       "indices 0, 1, 2, ...")
    if y.max() >= MAX_CLASSES:
        raise BadInput(f"{what} holds the label {y.max():g}; at most {MAX_CLASSES:,} classes "
                       f"(labels 0-{MAX_CLASSES - 1}) are supported")
    return y.astype(np.int64)


def check_pixels(images, what):
    """Images -> uint8 [N, H, W, 1|3] raw pixels. Floats in 0..1 are scaled to 0..255;
    NaN, infinite, negative or >255 values and non-numeric arrays are refused (with the
    reason), never clipped silently."""
    x = np.asarray(images)
    if x.dtype.kind not in "biuf":
        raise BadInput(f"{what} must hold numbers (pixels 0-255), got {x.dtype} values")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise BadInput(f"{what} must have shape [N,H,W] or [N,H,W,1|3], got {x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.size == 0:
        return x.astype(np.uint8)
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            kind = "NaN" if np.isnan(x[~finite]).any() else "infinite"
            raise BadInput(f"{what} holds {kind} pixel values; pixels must be finite numbers "
                           "in 0-255 (or 0-1)")
    low, high = x.min(), x.max()
    if low < 0:
        raise BadInput(f"{what} holds negative pixel values (down to {low:g}); pixels must be "
                       "in 0-255 (or 0-1 floats)")
    if high > 255:
        raise BadInput(f"{what} holds pixel values up to {high:g}; pixels must be in 0-255 "
                       "(or 0-1 floats): scale 16-bit images to 8 bits first")
    if x.dtype.kind == "f":
        if high <= 1.0:
            x = x * 255.0  # images stored as 0..1 floats; models expect 0..255 pixels
        return np.rint(x).astype(np.uint8)
    return x.astype(np.uint8)


def check_class_name(name, source):
    """BadInput unless ``name`` fits on one line of labels.txt and is not blank."""
    if not isinstance(name, str) or not name.strip():
        raise BadInput(f"{source}: a class name is empty")
    if name.splitlines() != [name] or any(unicodedata.category(c) == "Cc" for c in name):
        raise BadInput(f"{source}: class name {name!r} contains a line break or control "
                       "character (labels.txt holds one name per line)")
    return name


def check_class_names(names, num_classes, source):
    """A list of distinct one-line names, at least one per class index in the labels."""
    names = list(names)
    if len(names) > MAX_CLASSES:
        raise BadInput(f"{source} names {len(names):,} classes; at most {MAX_CLASSES:,} are supported")
    if len(names) < num_classes:
        raise BadInput(f"{source} names {len(names)} classes but the labels go up to "
                       f"{num_classes - 1} ({num_classes} classes)")
    seen = set()
    for name in names:
        check_class_name(name, source)
        if name in seen:
            raise BadInput(f"{source}: duplicate class name {name!r}")
        seen.add(name)
    return names


def read_names_file(path):
    """A labels.txt: one class name per LINE (names may hold spaces); trailing blank lines
    are ignored, blank lines between names are refused."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise BadInput(f"cannot read '{path}': {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise BadInput(f"'{path}' is not UTF-8 text (one class name per line)") from None
    lines = text.split("\n")
    while lines and lines[-1].strip("\r") == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
