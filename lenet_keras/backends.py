"""Which Keras backends exist here and which one a run uses, with no import of any of
them (so a check costs microseconds and ``lenet-keras --help`` stays fast).

A TensorFlow that is installed but fails to import (a broken install, a CUDA mismatch)
counts as absent once ``mark_tensorflow_broken`` has been called: a JAX or torch run
goes on without it (``quiet.import_keras`` does that).
"""

import importlib.util
import os
import sys

from lenet_keras.errors import BadInput

BACKENDS = ("tensorflow", "jax", "torch")
DISTRIBUTIONS = ("off", "mirrored", "data-parallel")
# Keras dtype policies, and "auto": mixed_bfloat16 where the registry measured it faster
# for the model on this CPU's kind of bf16, else float32 (devices.auto_precision).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CPU_DEVICES_ENV = "LENET_KERAS_CPU_DEVICES"
# Seconds a process other than 0 waits for process 0 (the coordinator) to answer.
JOIN_TIMEOUT_ENV = "LENET_KERAS_JOIN_TIMEOUT"
DEFAULT_JOIN_TIMEOUT = 300
# Set on every process of a multi-process (multi-host) data-parallel run.
PROCESS_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
               "KERAS_DISTRIBUTION_PROCESS_ID")
# What each backend needs, and how a user gets it (CPU builds; GPU lines in the README).
INSTALL_HINTS = {
    "tensorflow": "pip install tensorflow",
    "jax": "pip install jax  (GPU: pip install 'jax[cuda12]')",
    "torch": "pip install torch",
}
# Which backend each distribution runs on.
DISTRIBUTION_BACKEND = {"mirrored": "tensorflow", "data-parallel": "jax"}


def module_available(name):
    """True if ``import name`` can work, without importing it (a module set to None in
    sys.modules, as tests do to hide TensorFlow, counts as missing)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# Set when ``import tensorflow`` raised: from then on TensorFlow counts as absent.
_TENSORFLOW_BROKEN = []


def mark_tensorflow_broken(error):
    """Remember that ``import tensorflow`` failed with ``error`` in this process."""
    _TENSORFLOW_BROKEN.append(error)


def tensorflow_available():
    """True if TensorFlow is installed and has not failed to import in this process."""
    return not _TENSORFLOW_BROKEN and module_available("tensorflow")


def require_tensorflow(what):
    """BadInput in one line when TensorFlow is missing and ``what`` needs it."""
    if not tensorflow_available():
        raise BadInput(f"{what} needs TensorFlow, which is not installed here: "
                       f"{INSTALL_HINTS['tensorflow']}, or do this on a host that has it")


def default_backend():
    """``KERAS_BACKEND`` if set, else tensorflow; BadInput for a name Keras does not know
    (Keras itself would fail on import with a ValueError)."""
    value = os.environ.get("KERAS_BACKEND") or "tensorflow"
    if value not in BACKENDS:
        raise BadInput(f"KERAS_BACKEND={value!r} is not a Keras backend this package runs on: "
                       f"set it to one of {', '.join(BACKENDS)}, or unset it")
    return value


def active_backend():
    """The backend keras runs on in this process, or None if keras is not imported yet."""
    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None else None


def check_choices(backend, distribute, precision):
    """BadInput for a backend / distribution / precision combination that cannot work.
    Needs no import, so the CLI fails in milliseconds."""
    if backend not in BACKENDS:
        raise BadInput(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if distribute not in DISTRIBUTIONS:
        raise BadInput(f"distribute must be one of {', '.join(DISTRIBUTIONS)}, got {distribute!r}")
    if precision not in PRECISIONS:
        raise BadInput(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    needed = DISTRIBUTION_BACKEND.get(distribute)
    if needed and backend != needed:
        raise BadInput(f"--distribute {distribute} runs on the {needed} backend; "
                       f"pass --backend {needed} (got {backend})")
    if multi_process() and distribute != "data-parallel":
        raise BadInput("KERAS_DISTRIBUTION_* variables are set: several processes train one "
                       "model only with --backend jax --distribute data-parallel")


def cpu_device_count():
    """N from LENET_KERAS_CPU_DEVICES (None when unset); BadInput for a bad value."""
    value = os.environ.get(CPU_DEVICES_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise BadInput(f"{CPU_DEVICES_ENV} must be a number of devices from 1 to 64, got {value!r}")
    return int(value)


def configure_tensorflow_devices(tf):
    """Called by ``quiet.import_tensorflow`` between ``import tensorflow`` and the moment
    TensorFlow fixes its devices (their first use).

    LENET_KERAS_CPU_DEVICES=N: N logical CPU devices. On the JAX and torch backends
    TensorFlow only feeds data or writes TensorBoard logs: it is kept off the GPUs, which
    it would otherwise fill with its memory pool.
    """
    try:
        if os.environ.get("KERAS_BACKEND", "tensorflow") not in ("", "tensorflow"):
            tf.config.set_visible_devices([], "GPU")
        count = cpu_device_count()
        if count and count > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:  # devices already initialised (TensorFlow was used before)
        pass


def join_timeout():
    """LENET_KERAS_JOIN_TIMEOUT in seconds (DEFAULT_JOIN_TIMEOUT when unset)."""
    value = os.environ.get(JOIN_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_JOIN_TIMEOUT
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"{JOIN_TIMEOUT_ENV} must be a number of seconds, got {value!r}")
    return int(value)


def coordinator_address():
    """(host, port) of process 0 from KERAS_DISTRIBUTION_JOB_ADDRESSES (its first entry,
    as Keras reads it); BadInput when it is not host:port."""
    value = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",")[0].strip()
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"KERAS_DISTRIBUTION_JOB_ADDRESSES must start with process 0's "
                       f"host:port, got {value!r}")
    return host.strip("[]"), int(port)


def process_count_from_env():
    """KERAS_DISTRIBUTION_NUM_PROCESSES (1 when unset); BadInput unless a whole number."""
    value = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"KERAS_DISTRIBUTION_NUM_PROCESSES must be a number of processes "
                       f"(1, 2, ...), got {value!r}")
    return int(value)


def multi_process():
    """True when the KERAS_DISTRIBUTION_* variables ask for more than one process."""
    return process_count_from_env() > 1


def process_index_from_env():
    """This process's KERAS_DISTRIBUTION_PROCESS_ID (0 when it is alone)."""
    if not multi_process():
        return 0
    value = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "").strip()
    if not value.isdigit() or int(value) >= process_count_from_env():
        raise BadInput(f"KERAS_DISTRIBUTION_PROCESS_ID must be 0 .. number of processes - 1, "
                       f"got {value!r}")
    return int(value)
