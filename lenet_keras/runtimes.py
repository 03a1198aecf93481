"""The runtimes that run each exported form of a model: one class per runtime.

    TFLiteModel         .tflite files, LiteRT's interpreter (``ai-edge-litert``)
    KerasPredictor      model.keras (safe-mode load)
    SavedModelPredictor saved_model/, its ``serve`` endpoint (foreign ops refused)
    OnnxModel           .onnx files, ONNX Runtime (``pip install "lenet-keras[onnx]"``)
    MediaPipeModel      model_mediapipe.tflite in MediaPipe Tasks' ImageClassifier

Every class has the same face, which ``formats.FORMATS`` names per format:
``open(path, safe_mode)``, ``input_shape`` (H, W, C), ``num_outputs``, ``input_info`` /
``output_info`` (dtype, shape, scale, zero point), ``predict(images, progress=None)``
(raw 0-255 pixels in, probabilities out), ``timer(images)`` (a call running one image
per call, for latency), ``embedded_labels()`` and ``close()``. For an int8 file the
pixels are quantized, and the int8 probabilities dequantized, with the file's own scale
and zero point.

This module sits below ``formats`` (which names these classes) and ``predictors``
(which picks one by the table), so neither imports the other.
"""

import itertools
import os
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput
from lenet_keras.quiet import import_tensorflow, native_output_captured


def float_tensor(shape):
    """input_info / output_info of a float32 tensor (no quantization)."""
    return {"dtype": "float32", "shape": list(shape), "scale": 0.0, "zero_point": 0}


def _cycling(batches, call):
    """A zero-argument call running ``call`` on one batch after another, round and round."""
    batches = itertools.cycle(batches)
    return lambda: call(next(batches))


class Runtime:
    """What every runtime shares (see the module docstring)."""

    @classmethod
    def open(cls, path, safe_mode=True):
        return cls(path)

    def embedded_labels(self):
        return None

    def close(self):
        pass


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


class TFLiteModel(Runtime):
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
            self._source = model
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
    def content(self):
        source = self._source
        return bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()

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

    def timer(self, images):
        """One image after another, already in the file's input dtype."""
        prepared = self.prepare(images)
        return _cycling([prepared[i: i + 1] for i in range(len(prepared))], self.invoke)

    def embedded_labels(self):
        # A .tflite written by export carries its labels (TFLite metadata).
        from lenet_keras.metadata import embedded_labels

        return embedded_labels(self.content)


# ---------------------------------------------------------------------------------------
# Keras and SavedModel
# ---------------------------------------------------------------------------------------


class KerasPredictor(Runtime):
    def __init__(self, path, safe_mode=True):
        from lenet_keras.runs import load_model

        self.model = load_model(path, safe_mode=safe_mode)
        self.input_shape = tuple(self.model.input_shape[1:])
        self.num_outputs = int(self.model.output_shape[-1])
        self.input_info = float_tensor([None, *self.input_shape])
        self.output_info = float_tensor([None, self.num_outputs])

    @classmethod
    def open(cls, path, safe_mode=True):
        return cls(path, safe_mode)

    def predict(self, images, progress=None):
        images = np.asarray(images, np.float32)
        probabilities = np.asarray(self.model.predict(images, batch_size=256, verbose=0))
        if progress:
            progress(len(images))
        return probabilities

    def timer(self, images):
        images = np.asarray(images, np.float32)
        return _cycling([images[i: i + 1] for i in range(len(images))],
                        lambda one: self.model(one, training=False))


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


# TensorFlow reads a SavedModel's variables path as a glob pattern: these break it.
GLOB_CHARACTERS = "[]*?\\"


def _load_saved_model(tf, path):
    """tf.saved_model.load, through a link with a plain name when the path holds
    GLOB_CHARACTERS (a folder called 'run[1]' made the variables unreadable)."""
    import tempfile

    absolute = os.path.abspath(path)
    if not any(c in absolute for c in GLOB_CHARACTERS):
        return tf.saved_model.load(absolute)
    with tempfile.TemporaryDirectory(prefix="lenet_keras-savedmodel-") as folder:
        link = os.path.join(folder, "saved_model")
        os.symlink(absolute, link)
        return tf.saved_model.load(link)


class SavedModelPredictor(Runtime):
    def __init__(self, path, safe_mode=True):
        tf = import_tensorflow()

        if safe_mode:
            foreign = foreign_saved_model_ops(path)
            if foreign:
                raise BadInput(
                    f"SavedModel '{path}' runs ops lenet-keras exports never use "
                    f"({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); pass "
                    "--unsafe only if you trust where it came from")
        self.loaded = _load_saved_model(tf, path)
        if not hasattr(self.loaded, "serve"):
            raise BadInput(f"SavedModel '{path}' has no `serve` endpoint; export it with "
                           "lenet-keras export")
        signature = self.loaded.signatures["serving_default"]
        spec = signature.structured_input_signature[1]
        self.input_shape = tuple(next(iter(spec.values())).shape[1:])
        self.num_outputs = int(next(iter(signature.structured_outputs.values())).shape[-1])
        self.input_info = float_tensor([None, *self.input_shape])
        self.output_info = float_tensor([None, self.num_outputs])

    @classmethod
    def open(cls, path, safe_mode=True):
        return cls(path, safe_mode)

    def predict(self, images, progress=None, batch_size=256):
        images = np.asarray(images, np.float32)
        if progress:
            progress(len(images))
        return np.concatenate([
            np.asarray(self.loaded.serve(images[i: i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]) if len(images) else np.zeros((0, 0), np.float32)

    def timer(self, images):
        images = np.asarray(images, np.float32)
        return _cycling([images[i: i + 1] for i in range(len(images))], self.loaded.serve)


# ---------------------------------------------------------------------------------------
# ONNX Runtime
# ---------------------------------------------------------------------------------------

# The key of the ONNX model's metadata_props entry that holds the labels, one per line
# (what TFLite metadata is to a .tflite: a lone file knows its classes).
ONNX_LABELS_KEY = "labels"


class OnnxModel(Runtime):
    """An .onnx classifier run by ONNX Runtime on the CPU.

    Args:
        path: path of an .onnx file.
        num_threads: intra-op threads (1: the single-core latency LiteRT is timed with).
    """

    def __init__(self, path, num_threads=1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no graph-optimizer chatter
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BadInput(f"'{path}' has {len(inputs)} inputs and {len(outputs)} outputs; "
                           "a classifier has one of each")
        self._input_name = inputs[0].name
        # Named dimensions (the dynamic batch) read as None.
        in_shape = [d if isinstance(d, int) else None for d in inputs[0].shape]
        out_shape = [d if isinstance(d, int) else None for d in outputs[0].shape]
        if inputs[0].type != "tensor(float)" or len(in_shape) != 4 or None in in_shape[1:]:
            raise BadInput(f"'{path}' does not take float32 images [batch, H, W, C] "
                           f"({inputs[0].type} {in_shape})")
        self.input_shape = tuple(in_shape[1:])
        self.num_outputs = int(out_shape[-1])
        self.input_info = float_tensor(in_shape)
        self.output_info = float_tensor(out_shape)

    def _run(self, batch):
        return self.session.run(None, {self._input_name: batch})[0]

    def predict(self, images, progress=None, batch_size=256):
        images = np.asarray(images, np.float32)
        outputs = np.zeros((len(images), self.num_outputs), np.float32)
        for i in range(0, len(images), batch_size):
            outputs[i: i + batch_size] = self._run(images[i: i + batch_size])
            if progress:
                progress(len(images[i: i + batch_size]))
        return outputs

    def timer(self, images):
        images = np.asarray(images, np.float32)
        return _cycling([images[i: i + 1] for i in range(len(images))], self._run)

    def embedded_labels(self):
        text = self.session.get_modelmeta().custom_metadata_map.get(ONNX_LABELS_KEY)
        return text.splitlines() if text else None


# ---------------------------------------------------------------------------------------
# MediaPipe Tasks
# ---------------------------------------------------------------------------------------


class MediaPipeModel(Runtime):
    """model_mediapipe.tflite in MediaPipe Tasks' ImageClassifier, as an app runs it (its
    own preprocessing and threads; see metadata.MediaPipeClassifier)."""

    def __init__(self, path):
        from lenet_keras.metadata import MediaPipeClassifier

        with native_output_captured("loading the model in MediaPipe"):
            self.classifier = MediaPipeClassifier(path)
            tensors = TFLiteModel(path)  # the file's own tensors, for the report
        self.input_shape = tensors.input_shape
        self.num_outputs = tensors.num_outputs
        self.input_info, self.output_info = tensors.input_info, tensors.output_info
        self._labels = tensors.embedded_labels()

    def predict(self, images, progress=None):
        return self.classifier.predict(images, progress=progress)

    def timer(self, images):
        """ImageClassifier.classify on one uint8 RGB image after another."""
        return _cycling([self.classifier.image(pixels) for pixels in images],
                        self.classifier.classify)

    def embedded_labels(self):
        return self._labels

    def close(self):
        self.classifier.close()
