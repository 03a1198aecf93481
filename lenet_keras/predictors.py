"""Run a trained model on image files, whatever form it was shipped in.

One interface over the forms a model leaves this package in: the format table
(``formats.FORMATS``) says which runtime (``runtimes.py``) runs a file::

    model.keras             Keras 3 (safe-mode load)
    saved_model/            TensorFlow SavedModel, its ``serve`` endpoint
    model_*.tflite          LiteRT (float32, dynamic-range, float16 or full-integer int8)
    model.onnx              ONNX Runtime (pip install "lenet-keras[onnx]")

Every form takes raw 0-255 pixels and returns class probabilities; for an int8 file the
pixels are quantized, and the int8 probabilities dequantized, with the file's own scale
and zero point.

    >>> predictor = load_predictor("exports/run/model_int8.tflite")
    >>> predictor.predict(images)           # float32 [N,H,W,C] 0..255 -> [N,classes]
"""

import io
import os
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput, first_line
from lenet_keras.formats import for_path, model_kinds, require


# ---------------------------------------------------------------------------------------
# Loading any form
# ---------------------------------------------------------------------------------------


def find_labels(model_path):
    """labels.txt beside the model (or beside its saved_model/ folder), checked, else None."""
    from lenet_keras.checks import check_class_names, read_names_file

    path = Path(model_path)
    for folder in (path if path.is_dir() else path.parent, path.parent):
        candidate = folder / "labels.txt"
        if candidate.is_file():
            return check_class_names(read_names_file(candidate), 0, f"'{candidate}'")
    return None


def load_predictor(path, safe_mode=True):
    """A predictor for any model file of the format table: a .keras file, SavedModel
    directory, .tflite or .onnx file; the table's row for the file names its runtime.

    The returned object has ``input_shape`` (H, W, C), ``labels`` (list or None) and
    ``predict(images) -> probabilities``. Raises BadInput for a missing, unknown or
    corrupt model, or one whose runtime is not installed.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise BadInput(f"model must be a path to a model file, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise BadInput(f"model '{path}' does not exist")
    if not path.is_dir() and not path.is_file():  # a FIFO would block the read forever
        raise BadInput(f"model '{path}' is not a regular file (a pipe, socket or device)")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise BadInput(f"'{path}' is a directory but not a SavedModel "
                       "(no saved_model.pb); pass a .keras, .tflite or saved_model/")
    fmt = for_path(path)
    if fmt is None:
        raise BadInput(f"'{path}' is not a model: pass {model_kinds()}")
    require(fmt)
    try:
        predictor = fmt.predictor.open(path, safe_mode)
        # A .tflite or .onnx written by export carries its labels; others use the
        # labels.txt beside them. Either way they are checked like any class names.
        embedded = predictor.embedded_labels()
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001  corrupt or foreign files fail in many ways
        raise BadInput(f"cannot load model '{path}': {type(error).__name__}: {first_line(error)}") from None
    if embedded:
        from lenet_keras.checks import check_class_names

        embedded = check_class_names(embedded, 0, f"the labels in '{path}'")
    predictor.labels = embedded or find_labels(path)
    predictor.format = fmt
    outputs = predictor.num_outputs
    if predictor.labels is not None and len(predictor.labels) != outputs:
        source = f"'{path}'" if embedded else f"labels.txt beside '{path}'"
        raise BadInput(f"{source} lists {len(predictor.labels)} classes but the model has "
                       f"{outputs} outputs")
    return predictor


def read_image(path, input_shape):
    """An image file -> float32 raw pixels [H,W,C] at the model's input size and
    channel count (BadInput when it cannot be read)."""
    shown = printable_path(path)
    return decode_image(path, input_shape, name=f"image '{shown}'" if shown == str(path)
                        else f"image {shown}")


def printable_path(path):
    """A path as one line of output: as it is, or repr-escaped when it holds a line break
    or another control character (a file name may hold any byte but '/')."""
    text = str(path)
    if any(ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029\x85" for c in text):
        return repr(text)
    return text


def decode_image(source, input_shape, name="image"):
    """Image bytes, a binary file object or a path -> float32 raw pixels [H,W,C] at the
    model's input size and channel count (BadInput, saying why, when it is not a
    readable image or has more than MAX_IMAGE_PIXELS pixels).

    The one preprocessing step that ``predict`` (files) and ``serve`` (uploads) share,
    so both give the same answer for the same image.
    """
    from lenet_keras.sources import open_image, to_grayscale

    height, width, channels = input_shape
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    decoded = open_image(source, height, width, name=name)
    pixels = decoded[0] if channels == 3 else to_grayscale(decoded[0][None])[0]
    return pixels.astype(np.float32)


def top_k(probabilities, labels, k=1):
    """[(label, probability), ...] for the k most probable classes."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    names = labels if labels and len(labels) == len(probabilities) else None
    return [((names[i] if names else f"class_{i}"), float(probabilities[i])) for i in order]


def default_model_path():
    """The latest run's model.keras (BadInput when there is no run or no model yet)."""
    from lenet_keras.runs import resolve_run_dir

    path = resolve_run_dir(None) / "model.keras"
    if not path.exists():
        raise BadInput(f"run '{path.parent}' has no model.keras; pass --model")
    return path


def _check_paths(paths):
    """A list of image paths: one path (str or Path) counts as a list of one, not as its
    characters."""
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    try:
        paths = list(paths)
    except TypeError:
        raise BadInput(f"paths must be image paths (a list, or one path), got "
                       f"{type(paths).__name__}") from None
    for path in paths:
        if not isinstance(path, (str, os.PathLike)):
            raise BadInput(f"paths must hold file paths, got a {type(path).__name__}: {path!r:.60}")
    return paths


def predict_files(paths, model=None, top=1, safe_mode=True, on_error=None):
    """Classify image files with any form of model.

    Args:
        paths: image file paths.
        model: a .keras file, SavedModel directory, .tflite or .onnx file, or a predictor from
            ``load_predictor``; default: the latest run's model.keras.
        top: how many (label, probability) pairs to return per image.
        safe_mode: load a .keras file in Keras safe mode.
        on_error: called with (path, message) for each unreadable image, which is
            skipped; default: raise BadInput.

    Returns:
        [(path, [(label, probability), ...]), ...] for the readable images, in order.

    Example:
        >>> predict_files(["shirt.png"], "exports/run/model_int8.tflite", top=3)
    """
    from lenet_keras.quiet import native_output_captured

    paths = _check_paths(paths)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise BadInput(f"top must be a positive integer, got {top!r}")
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_predictor(model if model is not None else default_model_path(), safe_mode)
    elif not (hasattr(model, "predict") and hasattr(model, "input_shape")):
        raise BadInput(f"model must be a model path or a predictor from load_predictor, "
                       f"got {type(model).__name__}")
    readable, pixels = [], []
    for path in paths:
        try:
            # libtiff prints warnings from C on stderr: kept out of predict's output lines.
            with native_output_captured("reading an image"):
                pixels.append(read_image(path, model.input_shape))
            readable.append(path)
        except BadInput as error:
            if on_error is None:
                raise
            on_error(path, str(error))
    if not pixels:
        return []
    probabilities = model.predict(np.stack(pixels))
    return [(path, top_k(row, model.labels, top)) for path, row in zip(readable, probabilities)]
