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
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput, first_line
from lenet_keras.formats import for_path, model_kinds, require
# The runtimes, importable from here as before.
from lenet_keras.runtimes import (  # noqa: F401
    KerasPredictor, OnnxModel, SavedModelPredictor, TFLiteModel, dequantize,
    foreign_saved_model_ops, quantize,
)


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
    path = Path(path)
    if not path.exists():
        raise BadInput(f"model '{path}' does not exist")
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
    if not Path(path).is_file():
        raise BadInput(f"image '{path}' does not exist")
    return decode_image(path, input_shape, name=f"image '{path}'")


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
    if model is None or isinstance(model, (str, Path)):
        model = load_predictor(model if model is not None else default_model_path(), safe_mode)
    readable, pixels = [], []
    for path in paths:
        try:
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
