"""Keep TensorFlow's and LiteRT's native start-up chatter out of the user's terminal.

TensorFlow 2.21 writes its start-up lines (``oneDNN custom operations are on``, ``failed
call to cuInit``, ...) from C++ through absl before absl is initialised, so
``TF_CPP_MIN_LOG_LEVEL`` no longer silences them; LiteRT and the TFLite converter print
from C++ too. Python cannot filter what C++ writes, so while such a step runs, file
descriptor 2 itself points at a temporary file. The captured text is replayed on stderr
when the step fails with an unexpected error, or always with ``--debug``
(``LENET_KERAS_DEBUG=1``).

    >>> tf = import_tensorflow()         # silent, devices initialised
    >>> with native_output_captured("converting"):
    ...     converter.convert()
"""

import os
import sys
import tempfile
from contextlib import contextmanager

from lenet_keras.backends import (
    configure_tensorflow_devices, default_backend, mark_tensorflow_broken, tensorflow_available,
)
from lenet_keras.errors import BadInput

DEBUG_ENV = "LENET_KERAS_DEBUG"


def debugging():
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextmanager
def native_output_captured(step="this step"):
    """Send everything written to stderr (file descriptor 2, so C++ too) to a temporary
    file while the block runs. Replayed on stderr if the block raises something other
    than BadInput, or with --debug."""
    if debugging():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except BadInput:
            raise
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                captured.seek(0)
                text = captured.read().decode(errors="replace").strip()
                if text:
                    print(f"[native output while {step}]\n{text}", file=sys.stderr)


_devices_ready = []  # non-empty once TensorFlow's devices are initialised


def import_tensorflow():
    """``import tensorflow``, silently, with its devices initialised (the cuInit line is
    printed on the first op, not at import)."""
    if "tensorflow" in sys.modules and _devices_ready:
        return sys.modules["tensorflow"]
    with native_output_captured("importing TensorFlow"):
        import tensorflow as tf

        configure_tensorflow_devices(tf)  # before the devices initialise
        tf.config.list_logical_devices()
    if not debugging():  # absl's "WARNING:absl:..." lines (SavedModel export, ...)
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
        tf.get_logger().setLevel("ERROR")
    _devices_ready.append(True)
    return tf


def import_keras():
    """``import keras`` (and its backend: TensorFlow by default), silently.

    On the other backends TensorFlow is imported too where it is installed: Keras' input
    adapters and TensorBoard callback import it anyway, and this way it is silent and
    leaves the GPUs to JAX or torch (backends.configure_tensorflow_devices). There, a
    TensorFlow that fails to import (a broken install, a CUDA mismatch) counts as absent.
    """
    if "keras" not in sys.modules:
        default_backend()  # a KERAS_BACKEND Keras does not know: one line, not its ValueError
    with native_output_captured("importing Keras"):
        import keras

    if keras.backend.backend() == "tensorflow":
        import_tensorflow()
    elif tensorflow_available():
        try:
            import_tensorflow()
        except Exception as error:  # noqa: BLE001  any failure: train without it
            mark_tensorflow_broken(error)
    return keras
