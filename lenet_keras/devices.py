"""Where training runs: the Keras backend, the devices, the distribution over them, and
the numeric precision.

    >>> select_backend("jax")                  # before keras is first imported
    >>> placement = place(config)              # precision policy, distribution, devices
    >>> placement.summary()
    'training on 1 x NVIDIA H100 80GB HBM3 (jax, float32)'

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the backend is chosen
before anything imports keras: the CLI does it first thing in ``fit``; library users set
``KERAS_BACKEND`` themselves (or call ``select_backend`` before ``lenet_keras.models``).

Distribution uses the engines that exist, never a home-made one:
  mirrored       ``tf.distribute.MirroredStrategy`` over the local GPUs (or the CPU's
                 logical devices), TensorFlow backend;
  data-parallel  ``keras.distribution.DataParallel`` over every device of every process
                 (JAX backend); several processes/hosts join through the standard
                 ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` / ``_NUM_PROCESSES`` / ``_PROCESS_ID``
                 variables (``keras.distribution.initialize``).
``--batch-size`` is the global batch in both: N replicas each compute the gradient of
batch/N images and the replicas' gradients are averaged, which is the gradient a single
device computes on the whole batch. So the learning rate that suits the batch on one
device suits it on N, and it is not rescaled.

``LENET_KERAS_CPU_DEVICES=N`` splits the CPU into N devices (TensorFlow logical devices,
XLA's host platform device count for JAX) so that distribution is testable on a laptop.
"""

import os
import random
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from lenet_keras.backends import (
    BACKENDS, INSTALL_HINTS, JOIN_TIMEOUT_ENV, PROCESS_ENV, active_backend, coordinator_address,
    cpu_device_count, join_timeout, module_available, multi_process, process_index_from_env,
)
from lenet_keras.errors import BadInput, first_line, write_atomic
from lenet_keras.quiet import import_keras, import_tensorflow, native_output_captured
from lenet_keras.registry import get_spec
from lenet_keras.runs import SHARED_MARK
from lenet_keras.sources import source_kind

def select_backend(name):
    """Make ``name`` the Keras backend of this process (sets KERAS_BACKEND before keras
    is imported). BadInput if its package is missing, or if keras already runs on
    another backend in this process (Keras cannot switch once imported)."""
    if name not in BACKENDS:
        raise BadInput(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    active = active_backend()
    if active is not None:
        if active != name:
            raise BadInput(f"keras already runs on the {active} backend in this process; set "
                           f"KERAS_BACKEND={name} before anything imports keras")
        return
    if not module_available(name):
        raise BadInput(f"the {name} backend needs {name}, which is not installed here: "
                       f"{INSTALL_HINTS[name]}" + ("" if name == "jax" else ", or pass --backend jax"))
    os.environ["KERAS_BACKEND"] = name
    split_cpu_for_jax()


# ---------------------------------------------------------------------------------------
# LENET_KERAS_CPU_DEVICES: N devices out of one CPU, for testing distribution
# ---------------------------------------------------------------------------------------


def split_cpu_for_jax():
    """XLA reads its flags when jax starts: add the host device count before that."""
    count = cpu_device_count()
    if count is None or "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


# ---------------------------------------------------------------------------------------
# Placement: precision, distribution and the devices used
# ---------------------------------------------------------------------------------------


# The CPU instructions TensorFlow's oneDNN kernels run bfloat16 math on, as /proc/cpuinfo
# names them, fastest first: Intel's AMX tiles (Sapphire Rapids and later), then the
# AVX512-BF16 dot products (AMD Zen 4, Intel Cooper Lake). A CPU with AMX has both; it is
# its AMX that bf16 training runs on, so that is its kind.
BF16_KINDS = ("amx_bf16", "avx512_bf16")
CPUINFO_PATH = "/proc/cpuinfo"  # Linux only; elsewhere it is missing and bf16 never assumed


def cpu_bf16_kind(cpuinfo=None):
    """The CPU's bf16 kind (one of BF16_KINDS) from ``cpuinfo``, the text of
    /proc/cpuinfo (read when None); None when a processor lacks them, or off Linux (no
    /proc/cpuinfo to read: such CPUs are never assumed to have bf16). ARM's ``bf16``
    feature is not a kind: nobody measured it."""
    if cpuinfo is None:
        try:
            with open(CPUINFO_PATH, encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            return None
    flag_lines = [line.partition(":")[2].split() for line in cpuinfo.splitlines()
                  if line.split(":")[0].strip() == "flags"]
    if not flag_lines:
        return None
    # Every processor must have it: a thread may land on any of them.
    common = set.intersection(*(set(flags) for flags in flag_lines))
    return next((kind for kind in BF16_KINDS if kind in common), None)


def auto_precision(model, backend, on_gpu=False, distribute="off", model_args=None, cpuinfo=None):
    """What ``--precision auto`` trains ``model`` in: (policy, the line fit prints, or
    None when it says nothing more than the placement line).

    mixed_bfloat16 only where it was measured faster at the same accuracy: one CPU, the
    TensorFlow backend, the registry's own network (``--model-arg`` makes another one),
    and this CPU's bf16 kind in the model's ``ModelSpec.bf16_faster_on``. float32
    everywhere else: CPUs without bf16 (``cpuinfo``: /proc/cpuinfo's text, read when
    None), GPUs (unless asked), JAX and torch, distributed runs, none of them measured.
    """
    if backend != "tensorflow" or on_gpu or distribute != "off" or model_args:
        return "float32", None
    kind = cpu_bf16_kind(cpuinfo)
    speedup = get_spec(model).bf16_faster_on.get(kind) if kind else None
    if speedup is None:
        return "float32", None
    return "mixed_bfloat16", (f"precision: mixed_bfloat16 (auto: {speedup:.2f}x float32 for "
                              f"{model} on this CPU's {kind}, measured)")


def cpu_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@dataclass
class Placement:
    """Where and how one fit runs. ``scope()`` is where the model must be built and
    compiled (MirroredStrategy needs its variables created inside it)."""

    backend: str
    distribute: str = "off"
    precision: str = "float32"
    devices: list = field(default_factory=lambda: ["CPU"])
    replicas: int = 1
    processes: int = 1
    process_id: int = 0
    strategy: object = None  # the tf.distribute strategy of --distribute mirrored
    # Why --precision auto chose bf16 (one line for fit to print); None otherwise.
    precision_note: str = None

    @property
    def is_chief(self):
        """Process 0 writes the shared run files."""
        return self.process_id == 0

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    def summary(self):
        """One line: ``training on CPU, 2 cores (tensorflow, float32)``."""
        names = sorted(set(self.devices))
        if names == ["CPU"] and len(self.devices) == 1:
            where = f"CPU, {cpu_cores()} cores"
        elif len(names) == 1:
            where = f"{len(self.devices)} x {names[0]}"
        else:
            where = ", ".join(f"{self.devices.count(n)} x {n}" for n in names)
        if self.processes > 1:
            where += f" in {self.processes} processes"
        line = f"training on {where} ({self.backend}, {self.precision})"
        if self.distribute != "off":
            line += f", {self.distribute}: {self.replicas} replica{'s' if self.replicas > 1 else ''}"
        return line

    def metrics(self):
        """What metrics.json records about the placement."""
        return {"backend": self.backend, "devices": list(self.devices),
                "replicas": self.replicas, "processes": self.processes,
                "distribute": self.distribute, "precision": self.precision}


def _device_name(platform, kind):
    return "CPU" if platform.lower() == "cpu" else kind


def _tensorflow_devices(tf, all_devices):
    """Names of the GPUs TensorFlow trains on (or ["CPU"] x logical CPUs)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", "GPU"))
            except (ValueError, RuntimeError):
                names.append("GPU")
        return names if all_devices else names[:1]
    cpus = tf.config.list_logical_devices("CPU")
    return ["CPU"] * (len(cpus) if all_devices else 1)


def _jax_devices(all_devices):
    import jax

    devices = jax.devices() if all_devices else jax.devices()[:1]
    return [_device_name(d.platform, d.device_kind) for d in devices]


def _torch_devices():
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(0)]
    return ["CPU"]


def place(config):
    """Set the dtype policy (``auto`` resolved by auto_precision, once the devices are
    known) and the distribution ``config`` asks for; returns the Placement. Keras is
    imported here (on ``config.backend``, chosen before)."""
    keras = import_keras()
    backend = keras.backend.backend()
    keras.distribution.set_distribution(None)  # a previous fit in this process may have set one
    placement = Placement(backend, config.distribute, config.precision)
    _place_devices(config, keras, placement)
    if config.precision == "auto":
        on_gpu = any(name != "CPU" for name in placement.devices)
        placement.precision, placement.precision_note = auto_precision(
            config.model, backend, on_gpu, config.distribute, config.model_args)
    # Layers take the global policy when they are created: set before the model is built.
    # "mixed_*": float32 variables, bf16/fp16 compute; compile() wraps the optimizer in a
    # LossScaleOptimizer for mixed_float16 (auto_scale_loss); the classifier stays float32.
    keras.config.set_dtype_policy(placement.precision)
    if config.batch_size % placement.replicas:
        raise BadInput(f"--batch-size {config.batch_size} (the global batch) must be a multiple "
                       f"of the {placement.replicas} replicas")
    return placement


def _place_devices(config, keras, placement):
    """The devices, replicas and processes of ``placement``; the distribution set."""
    backend = placement.backend
    if config.distribute == "mirrored":
        tf = import_tensorflow()
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        placement.strategy = tf.distribute.MirroredStrategy(devices)
        placement.devices = _tensorflow_devices(tf, all_devices=True)
        placement.replicas = placement.strategy.num_replicas_in_sync
    elif config.distribute == "data-parallel":
        if multi_process():
            _join_processes(keras)
        import jax

        devices = keras.distribution.list_devices()
        # Each process feeds its own share of every global batch (lenet_keras.feed), so
        # Keras must not re-shard the input; a tf.data pipeline (TFDS) is re-sharded.
        keras.distribution.set_distribution(keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=config_source_is_tfds(config)))
        placement.devices = _jax_devices(all_devices=True)
        placement.replicas = len(devices)
        placement.processes, placement.process_id = jax.process_count(), jax.process_index()
    elif backend == "tensorflow":
        placement.devices = _tensorflow_devices(import_tensorflow(), all_devices=False)
    elif backend == "jax":
        placement.devices = _jax_devices(all_devices=False)
    elif backend == "torch":
        placement.devices = _torch_devices()


def config_source_is_tfds(config):
    return source_kind(config.dataset) == "tfds"


def _join_processes(keras):
    """keras.distribution.initialize from the KERAS_DISTRIBUTION_* variables; it waits
    until every process has joined."""
    import jax

    if jax.distributed.is_initialized():
        return
    if process_index_from_env() != 0:
        _wait_for_coordinator()
    try:
        with native_output_captured("joining the other processes"):
            keras.distribution.initialize()
    except (RuntimeError, ValueError) as error:
        raise BadInput(f"cannot join the other processes ({', '.join(PROCESS_ENV)}): "
                       f"{first_line(error)}") from None


def _wait_for_coordinator():
    """Wait (saying so, once) until process 0 accepts connections, at most join_timeout()
    seconds: JAX's own client waited 5 minutes in silence, then aborted (SIGABRT)."""
    import socket
    import time

    host, port = coordinator_address()
    timeout = join_timeout()
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as error:
            reason = error.strerror or type(error).__name__
        if time.monotonic() >= deadline:
            raise BadInput(f"process 0 (the coordinator at {host}:{port}) did not answer within "
                           f"{timeout} s ({reason}); start it, check KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                           f"or wait longer with {JOIN_TIMEOUT_ENV}=SECONDS")
        if not said:
            print(f"waiting up to {timeout} s for process 0 (the coordinator) at {host}:{port} ...",
                  file=sys.stderr, flush=True)
            said = True
        time.sleep(1)


def barrier(name):
    """Wait until every process of a multi-process run gets here (no-op otherwise)."""
    if "jax" not in sys.modules:
        return
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(value):
    """Process 0's integer ``value``, on every process (no-op in a single process)."""
    if "jax" not in sys.modules:
        return value
    import jax

    if jax.process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


@contextmanager
def plain_float32():
    """Build models here that are float32 and on no distribution: the model.keras a run
    writes is the same whatever precision and distribution trained it."""
    import keras

    policy, distribution = keras.config.dtype_policy(), keras.distribution.distribution()
    keras.config.set_dtype_policy("float32")
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.distribution.set_distribution(distribution)


# ---------------------------------------------------------------------------------------
# Which process writes the run folder (multi-process data-parallel runs)
# ---------------------------------------------------------------------------------------


def run_token(placement):
    """A random number process 0 draws and every process of the run receives (None for
    a single process): it tells a directory this run's process 0 writes."""
    if placement.processes == 1:
        return None
    return agree(random.randrange(1, 2**31))


def claim_run_dir(placement, run_dir, own_run_dir, token):
    """Whether this process writes run_dir: process 0 always; another process only a
    --run-dir of its own, one that does not hold process 0's mark of this run."""
    if token is None:
        return True
    if placement.is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        mark_shared(run_dir, token)
    barrier("lenet_keras run dir marked")
    if placement.is_chief:
        return True
    mark = run_dir / SHARED_MARK
    shared = mark.is_file() and mark.read_text().strip() == str(token)
    return own_run_dir and not shared


def mark_shared(run_dir, token):
    write_atomic(run_dir / SHARED_MARK, f"{token}\n")
