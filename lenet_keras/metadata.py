"""TFLite metadata: the labels and input normalization inside every exported .tflite, so a
phone app needs one file, and the MediaPipe-ready classifier.

Metadata is what MediaPipe Tasks (and the older TFLite Task Library) read to use a model
without code: a ``TFLITE_METADATA`` flatbuffer (schema ``metadata_schema.fbs``, file
identifier ``M001``) in one of the model's buffers, named in ``Model.metadata``, and the
files it refers to (here ``labels.txt``) appended to the .tflite as a zip archive; the
model itself is unchanged and every runtime ignores both.

The writer: MediaPipe ships the maintained metadata writer, but its ``populate`` step
(``mediapipe.tasks.python.metadata.metadata``) fails to import in mediapipe 1.2.3 (``No
module named 'mediapipe.tasks.cc'``: a missing native module that only computes the
minimum parser version), and tflite-support 0.4.4 would downgrade protobuf to 3.x. So the
tensor metadata comes from MediaPipe's own ``metadata_info`` classes (what its
ImageClassifier writer builds), and ``add_metadata`` does the populate step as
MediaPipe's ``MetadataPopulator`` does: pack with identifier ``M001`` and
``min_parser_version``, append a buffer and a ``TFLITE_METADATA`` entry to the model
(LiteRT's own schema classes, so no field of a newer converter is lost), append the zip.

    >>> content = add_metadata(tflite_bytes, labels, name="lenet5", channels=1)
    >>> read_metadata(content)["labels"]
"""

import io
import zipfile
import zlib

import flatbuffers
import numpy as np

from lenet_keras.errors import BadInput

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
TFLITE_IDENTIFIER = b"TFL3"
LABELS_FILE = "labels.txt"
# 10,000 class names (checks.MAX_CLASSES) of up to 100 bytes each.
MAX_LABELS_BYTES = 1_000_000
# Every field written here (general info, image properties, normalization, stats, a
# TENSOR_AXIS_LABELS file) exists since metadata schema 1.0.0; fields added later (input
# process units 1.1.0, tensor groups 1.2.0, file versions 1.4.1, ...) are not used. This is
# the value MediaPipe's native GetMinimumMetadataParserVersion returns for such metadata.
MIN_PARSER_VERSION = "1.0.0"
# The schema asks for 16-byte aligned buffer data (``force_align: 16``: int32 biases, SIMD
# loads, microcontrollers that fault on unaligned words); Python's flatbuffers ignores it.
BUFFER_ALIGNMENT = 16
# The exported models take raw 0-255 pixels and scale inside (Rescaling, folded into the
# first convolution), so the normalization a runtime applies is the identity.
PIXEL_MEAN, PIXEL_STD = 0.0, 1.0


def _metadata_modules():
    """MediaPipe's metadata schema and helper classes (imported only when writing)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, writer_utils

    return schema, metadata_info, writer_utils


def metadata_buffer(model_content, labels, name, description, channels):
    """The ``M001`` metadata flatbuffer for an image classifier .tflite.

    Args:
        model_content: the .tflite bytes (its input/output tensor types and names are read).
        labels: class names in output order.
        name, description: the model's general info.
        channels: 1 (grayscale) or 3 (RGB) input.
    """
    schema, info, utils = _metadata_modules()
    content = bytearray(model_content)
    color = schema.ColorSpaceType.GRAYSCALE if channels == 1 else schema.ColorSpaceType.RGB
    image = info.InputImageTensorMd(
        name="image", description="Raw pixels, 0-255 (scaled inside the model).",
        norm_mean=[PIXEL_MEAN] * channels, norm_std=[PIXEL_STD] * channels,
        color_space_type=color, tensor_type=utils.get_input_tensor_types(content)[0])
    scores = info.ClassificationTensorMd(
        name="probability", description="Probability of each label.",
        label_files=[info.LabelFileMd(LABELS_FILE)],
        tensor_type=utils.get_output_tensor_types(content)[0])
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image.create_metadata()]
    subgraph.outputTensorMetadata = [scores.create_metadata()]
    model = info.GeneralMd(name=name, description=description).create_metadata()
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _model_part(content):
    """The flatbuffer part of a .tflite (without a zip of associated files after it)."""
    if zipfile.is_zipfile(io.BytesIO(content)):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            first = min((item.header_offset for item in archive.infolist()), default=len(content))
        return content[:first]
    return content


def _aligned_buffer(buffer, tflite):
    """A ``BufferT`` whose data is packed at a BUFFER_ALIGNMENT boundary."""

    class AlignedBufferT(tflite.BufferT):
        def Pack(self, builder):  # noqa: N802  (the generated classes' name)
            data = None
            if self.data is not None:
                payload = np.frombuffer(bytes(np.asarray(self.data, np.uint8)), np.uint8)
                builder.Prep(BUFFER_ALIGNMENT, len(payload))  # data ends, so starts, aligned
                data = builder.CreateNumpyVector(payload)
            tflite.BufferStart(builder)
            if data is not None:
                tflite.BufferAddData(builder, data)
            tflite.BufferAddOffset(builder, self.offset)
            tflite.BufferAddSize(builder, self.size)
            return tflite.BufferEnd(builder)

    aligned = AlignedBufferT()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


def add_metadata(model_content, labels, name, description="", channels=1):
    """``model_content`` (.tflite bytes) with image-classifier metadata and labels.txt.

    Replaces metadata and associated files the bytes already carry.
    """
    from ai_edge_litert import schema_py_generated as tflite

    labels = [str(label) for label in labels]
    model_bytes = bytes(_model_part(bytes(model_content)))
    buffer = metadata_buffer(model_bytes, labels, name, description, channels)
    model = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(model_bytes, 0))
    entry = tflite.BufferT()
    entry.data = np.frombuffer(buffer, np.uint8)
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()]
    model.buffers = [_aligned_buffer(b, tflite) for b in [*(model.buffers or []), entry]]
    field = tflite.MetadataT()
    field.name = METADATA_NAME
    field.buffer = len(model.buffers) - 1
    model.metadata.append(field)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), TFLITE_IDENTIFIER)
    # The associated files: a zip archive after the flatbuffer, stored (not compressed),
    # as MediaPipe's MetadataPopulator appends them.
    packed = io.BytesIO(bytes(builder.Output()))
    packed.seek(0, io.SEEK_END)
    with zipfile.ZipFile(packed, "a") as archive:
        archive.writestr(LABELS_FILE, "\n".join(labels) + "\n")
    return packed.getvalue()


def embedded_labels(model_content):
    """The labels.txt zipped into a .tflite by ``add_metadata``, or None. Reads only the
    zip (no flatbuffer schema), so it is cheap enough for ``predict``."""
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(model_content))) as archive:
            # Read at most MAX_LABELS_BYTES: a crafted file's labels.txt could inflate
            # to gigabytes.
            with archive.open(LABELS_FILE) as member:
                data = member.read(MAX_LABELS_BYTES + 1)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error):
        return None
    if len(data) > MAX_LABELS_BYTES:
        raise BadInput(f"the {LABELS_FILE} inside the model is larger than "
                       f"{MAX_LABELS_BYTES:,} bytes; it is not this package's")
    try:
        return data.decode().splitlines()
    except UnicodeDecodeError:
        return None


def read_metadata(model_content):
    """What a runtime reads from the metadata: {name, description, min_parser_version,
    color_space, mean, std, label_file, labels}; None when there is none."""
    from ai_edge_litert import schema_py_generated as tflite

    schema, _, _ = _metadata_modules()
    content = bytes(model_content)
    model = tflite.Model.GetRootAsModel(content, 0)
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name().decode() != METADATA_NAME:
            continue
        data = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
        if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0):
            return None
        meta = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAsModelMetadata(data, 0))
        image = meta.subgraphMetadata[0].inputTensorMetadata[0]
        scores = meta.subgraphMetadata[0].outputTensorMetadata[0]
        options = image.processUnits[0].options
        colors = {v: k for k, v in vars(schema.ColorSpaceType).items() if not k.startswith("_")}
        label_file = scores.associatedFiles[0].name.decode()
        return {
            "name": meta.name.decode() if meta.name else None,
            "description": meta.description.decode() if meta.description else None,
            "min_parser_version": meta.minParserVersion.decode(),
            "color_space": colors[image.content.contentProperties.colorSpace],
            "mean": [float(v) for v in options.mean],
            "std": [float(v) for v in options.std],
            "label_file": label_file,
            "labels": embedded_labels(content),
        }
    return None


class MediaPipeClassifier:
    """A .tflite classified by MediaPipe Tasks' ``ImageClassifier``, as an Android, iOS or
    web app would: labels and preprocessing come from the file's metadata alone.

    Args:
        path: a .tflite file with image-classifier metadata (``add_metadata``).
    """

    def __init__(self, path):
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        options = vision.ImageClassifierOptions(
            base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
        self.classifier = vision.ImageClassifier.create_from_options(options)

    @staticmethod
    def image(pixels):
        """Raw pixels [H, W, 1 or 3] (0-255) -> a MediaPipe SRGB image."""
        import mediapipe as mp

        pixels = np.asarray(pixels)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        rgb = np.ascontiguousarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)

    def classify(self, image):
        """[(index, label, score)] for one MediaPipe image, most probable first."""
        result = self.classifier.classify(image)
        return [(c.index, c.category_name, c.score) for c in result.classifications[0].categories]

    def predict(self, images, progress=None):
        """Class probabilities [N, classes] for raw pixels [N, H, W, C] of any size (the
        classifier resizes them to the model's input)."""
        rows = []
        for pixels in images:
            scores = self.classify(self.image(pixels))
            row = np.zeros(len(scores), np.float32)
            for index, _, score in scores:
                row[index] = score
            rows.append(row)
            if progress:
                progress(1)
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def close(self):
        self.classifier.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
