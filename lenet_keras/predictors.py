"""Run a trained model on image files, whatever form it was shipped in.

One interface over the three forms a model leaves this package in::

    model.keras             Keras 3 (safe-mode load)
    saved_model/            TensorFlow SavedModel, its ``serve`` endpoint
    model_*.tflite          LiteRT (float32, dynamic-range, float16 or full-integer int8)

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
from lenet_keras.metadata import embedded_labels
from lenet_keras.quiet import import_tensorflow, native_output_captured

TFLITE_SUFFIX = ".tflite"


# ---------------------------------------------------------------------------------------
# LiteRT
# ---------------------------------------------------------------------------------------


def quantize(x, dtype, scale, zero_point):
    """Real values -> integers of ``dtype`` with the TFLite affine scheme q = x/s + z."""
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q, scale, zero_point):
    """Integers -> real values, x = (q - z) * s."""
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


def _tensor_info(detail):
    scale, zero_point = detail["quantization"]
    return {
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(d) for d in detail["shape_signature"]],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


class TFLiteModel:
    """A .tflite classifier run by LiteRT's interpreter (``ai-edge-litert``).

    Args:
        model: path of a .tflite file, or its bytes.
        num_threads: interpreter threads (1: the latency a phone's single core sees).
    """

    def __init__(self, model, num_threads=1):
        from ai_edge_litert.interpreter import Interpreter

        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" from C++.
        with native_output_captured("loading a .tflite file"):
            if isinstance(model, (bytes, bytearray)):
                self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
            else:
                self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.input_info = _tensor_info(self._input)
        self.output_info = _tensor_info(self._output)
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        # The files this package writes take one image ([1,H,W,C]); others may be dynamic.
        self.batch_size = int(self._input["shape_signature"][0])
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.num_outputs = int(self._output["shape"][-1])

    @property
    def quantized_input(self):
        # uint8 with no scale (model_mediapipe.tflite) is raw pixels, not quantized.
        return self.input_dtype.kind in "iu" and self.input_info["scale"] != 0

    def prepare(self, images):
        """Raw pixels -> the input tensor's dtype (quantized for an integer input)."""
        images = np.asarray(images, np.float32)
        if self.quantized_input:
            return quantize(images, self.input_dtype, self.input_info["scale"],
                            self.input_info["zero_point"])
        if self.input_dtype.kind in "iu":
            return quantize(images, self.input_dtype, 1.0, 0)
        return images.astype(self.input_dtype)

    def invoke(self, prepared):
        """One forward pass on an already prepared batch; returns the raw output tensor."""
        self.interpreter.set_tensor(self._input["index"], prepared)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def _finish(self, raw):
        if self.output_dtype.kind in "iu":
            return dequantize(raw, self.output_info["scale"], self.output_info["zero_point"])
        return raw.astype(np.float32)

    def predict(self, images, progress=None):
        """Class probabilities for raw pixels [N,H,W,C]; one image per call to a
        fixed-batch file. ``progress`` is an optional callable(n) per image done."""
        prepared = self.prepare(images)
        if self.batch_size == -1 and len(prepared) > 1:
            self.interpreter.resize_tensor_input(self._input["index"], prepared.shape)
            self.interpreter.allocate_tensors()
            return self._finish(self.invoke(prepared))
        outputs = np.empty((len(prepared), self.output_info["shape"][-1]), np.float32)
        for i in range(len(prepared)):
            outputs[i] = self._finish(self.invoke(prepared[i: i + 1]))[0]
            if progress:
                progress(1)
        return outputs


# ---------------------------------------------------------------------------------------
# Keras and SavedModel
# ---------------------------------------------------------------------------------------


class KerasPredictor:
    def __init__(self, path, safe_mode=True):
        from lenet_keras.runs import load_model

        self.model = load_model(path, safe_mode=safe_mode)
        self.input_shape = tuple(self.model.input_shape[1:])
        self.num_outputs = int(self.model.output_shape[-1])

    def predict(self, images):
        return np.asarray(self.model.predict(np.asarray(images, np.float32), verbose=0))


# Ops of the SavedModels ``export`` writes (every registry model, float and mixed
# precision), and pure tensor math of the same kind: none reads or writes files, talks
# to the network or calls Python. A SavedModel runs whatever its graph holds, so a
# foreign one with other ops (WriteFile, PyFunc, ...) needs --unsafe.
SERVING_OPS = frozenset({
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StatefulPartitionedCall",
    "PartitionedCall", "VarHandleOp", "ReadVariableOp", "VarIsInitializedOp",
    "AssignVariableOp", "DisableCopyOnRead",
    "Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "BiasAdd", "MaxPool",
    "AvgPool", "FusedBatchNormV3", "Relu", "Relu6", "Elu", "Selu", "Tanh", "Sigmoid",
    "Softmax", "LogSoftmax", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Rsqrt",
    "Sqrt", "Square", "Exp", "Log", "Neg", "Sum", "Mean", "Max", "Min", "Cast", "Pad",
    "Reshape", "Shape", "Squeeze", "ExpandDims", "StridedSlice", "Slice", "Pack", "Unpack",
    "ConcatV2", "Transpose", "Fill", "Range", "Prod", "GatherV2", "SpaceToDepth",
    "DepthToSpace", "ClipByValue",
})
# Checkpoint save / restore: allowed only in the functions the SavedModel's saver_def
# names, which loading and serving never call.
SAVER_OPS = frozenset({
    "Const", "Identity", "NoOp", "Pack", "ReadVariableOp", "AssignVariableOp",
    "DisableCopyOnRead", "SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename",
    "StaticRegexFullMatch", "StringJoin", "Select",
})


def _called_functions(node):
    """Names of the functions a graph node calls (through any function-valued attr)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func)
    return names


def foreign_saved_model_ops(path):
    """Ops in a SavedModel outside what this package's exports use (SERVING_OPS, and
    SAVER_OPS inside the saver's own functions only); an empty list for one of ours.
    Reads saved_model.pb only; nothing in the graph runs."""
    import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    foreign = set()
    for graph in saved_model.meta_graphs:
        functions = {f.signature.name: f for f in graph.graph_def.library.function}
        saver_nodes = {graph.saver_def.save_tensor_name.split(":")[0],
                       graph.saver_def.restore_op_name.split(":")[0]} - {""}

        def reachable(roots):
            seen, todo = set(), list(roots)
            while todo:
                name = todo.pop()
                if name in seen or name not in functions:
                    continue
                seen.add(name)
                todo.extend(c for n in functions[name].node_def for c in _called_functions(n))
            return seen

        serving_nodes = [n for n in graph.graph_def.node if n.name not in saver_nodes]
        saver_roots = [c for n in graph.graph_def.node if n.name in saver_nodes
                       for c in _called_functions(n)]
        serving = reachable(c for n in serving_nodes for c in _called_functions(n))
        # Functions no node calls are held to the serving list too (the strict one).
        serving |= set(functions) - reachable(saver_roots)
        foreign |= {n.op for n in serving_nodes} - SERVING_OPS
        for name in serving:
            foreign |= {n.op for n in functions[name].node_def} - SERVING_OPS
        for name in set(functions) - serving:
            foreign |= {n.op for n in functions[name].node_def} - SAVER_OPS
        foreign |= {n.op for n in graph.graph_def.node if n.name in saver_nodes} - SERVING_OPS
    return sorted(foreign)


class SavedModelPredictor:
    def __init__(self, path, safe_mode=True):
        tf = import_tensorflow()

        if safe_mode:
            foreign = foreign_saved_model_ops(path)
            if foreign:
                raise BadInput(
                    f"SavedModel '{path}' runs ops lenet-keras exports never use "
                    f"({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); pass "
                    "--unsafe only if you trust where it came from")
        self.loaded = tf.saved_model.load(str(path))
        if not hasattr(self.loaded, "serve"):
            raise BadInput(f"SavedModel '{path}' has no `serve` endpoint; export it with "
                           "lenet-keras export")
        signature = self.loaded.signatures["serving_default"]
        spec = signature.structured_input_signature[1]
        self.input_shape = tuple(next(iter(spec.values())).shape[1:])
        self.num_outputs = int(next(iter(signature.structured_outputs.values())).shape[-1])

    def predict(self, images, batch_size=256):
        images = np.asarray(images, np.float32)
        return np.concatenate([
            np.asarray(self.loaded.serve(images[i: i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]) if len(images) else np.zeros((0, 0), np.float32)


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
    """A predictor for a .keras file, SavedModel directory or .tflite file.

    The returned object has ``input_shape`` (H, W, C), ``labels`` (list or None) and
    ``predict(images) -> probabilities``. Raises BadInput for a missing, unknown or
    corrupt model.
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"model '{path}' does not exist")
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").is_file():
                raise BadInput(f"'{path}' is a directory but not a SavedModel "
                               "(no saved_model.pb); pass a .keras, .tflite or saved_model/")
            predictor = SavedModelPredictor(path, safe_mode)
        elif path.suffix == ".keras":
            predictor = KerasPredictor(path, safe_mode)
        elif path.suffix == TFLITE_SUFFIX:
            predictor = TFLiteModel(path)
        else:
            raise BadInput(f"'{path}' is not a model: pass a .keras file, a SavedModel "
                           "directory or a .tflite file")
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001  corrupt or foreign files fail in many ways
        raise BadInput(f"cannot load model '{path}': {type(error).__name__}: {first_line(error)}") from None
    # A .tflite written by export carries its labels (TFLite metadata); others use the
    # labels.txt beside them. Either way they are checked like any class names.
    embedded = embedded_labels(path.read_bytes()) if path.suffix == TFLITE_SUFFIX else None
    if embedded:
        from lenet_keras.checks import check_class_names

        embedded = check_class_names(embedded, 0, f"the labels in '{path}'")
    predictor.labels = embedded or find_labels(path)
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
        model: a .keras file, SavedModel directory, .tflite file, or a predictor from
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
