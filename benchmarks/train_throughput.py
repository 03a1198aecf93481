"""Training speed of this package against a plain PyTorch loop and keras-io's model.fit.

One run, same data, same machine, same network (modern LeNet-5: ReLU, max-pool,
6-16-120-84, 28x28 padded to 32x32 inside the model), same batch size:

    (a) package   the code ``cli.py fit`` runs: ``load_batches`` + ``build_for_config`` with
                  the default ``TrainConfig`` (tf.data pipeline, Adam 1e-3 cosine), timed
                  by the same ``TrainingTimer`` that writes ``train_images_per_second``
    (b) pytorch   a plain PyTorch loop: Adam 1e-3, uint8 tensors gathered per batch
    (c) keras-io  ``model.compile(optimizer="adam", ...)`` + ``model.fit`` on numpy
                  arrays, Keras defaults (the keras-io examples' way)

Each runs in its own worker process (its own threads, its own peak memory); the main
process alternates one epoch of (a), one of (b), ... so that a CPU shared with other
jobs slows all of them alike, and ratios are medians of per-epoch pairs. Time to
accuracy is seconds spent in training steps (evaluation excluded, the first step's
compilation included) until the test accuracy first reaches --target.

    pip install -r benchmarks/requirements.txt       # torch 2.13 CPU build, optional
    python benchmarks/train_throughput.py            # ~4 minutes on 2 cores
    python benchmarks/train_throughput.py --quick    # throughput only, ~1 minute
    python benchmarks/train_throughput.py --levers   # package variants (jit, oneDNN, ...)

--levers compares variants of (a), each a worker with TrainConfig fields and
environment variables changed, e.g. ``--variant "no-onednn:TF_ENABLE_ONEDNN_OPTS=0"``
or ``--variant "jit:jit_compile=True,steps_per_execution=1"``.
"""

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import BASELINE, COMMANDS, startup_seconds  # benchmarks/startup.py

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
MARK = "@@bench "  # worker replies start with this; everything else is library noise

# Package variants compared by --levers when no --variant is given.
DEFAULT_LEVERS = [
    "default:",
    "xla:jit_compile=True",
    "xla+spe1 (old defaults):jit_compile=True,steps_per_execution=1",
    "spe1:steps_per_execution=1",
    "no-onednn:TF_ENABLE_ONEDNN_OPTS=0",
    "intra1:intra_op_threads=1",
    "inter1:inter_op_threads=1",
]


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def train_val_arrays(data, val_split=0.1, seed=42):
    """The package's training split (same seeded hold-out as load_dataset) and test set."""
    from lenet_keras.sources import load_arrays
    from lenet_keras.pipelines import _seeded_split

    arrays = load_arrays(data)
    keep, _ = _seeded_split(len(arrays.x_train), val_split, seed)
    return arrays.x_train[keep], arrays.y_train[keep], arrays.x_test, arrays.y_test


# ---------------------------------------------------------------------------------------
# Workers: one process each, answering commands read from stdin
# ---------------------------------------------------------------------------------------


def timed_keras_epoch(worker, x, **fit_options):
    """One more epoch of ``worker.model.fit``, timed by its TrainingTimer (steps only)."""
    timer = worker.timer
    images, seconds = timer.images, timer.step_seconds
    started, cpu_started = time.perf_counter(), time.process_time()
    worker.model.fit(x, epochs=worker.epoch_index + 1, initial_epoch=worker.epoch_index,
                     callbacks=[timer], verbose=0, **fit_options)
    worker.epoch_index += 1
    return {
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "images": timer.images - images,
        "step_seconds": timer.step_seconds - seconds,
        "compile_seconds": timer.compile_seconds,
    }


class PackageWorker:
    """(a) The package's own training path, as train() runs it."""

    def __init__(self, options):
        import tensorflow as tf

        # Thread pools are fixed at TensorFlow's first op: set them before anything runs.
        if "intra_op_threads" in options:
            tf.config.threading.set_intra_op_parallelism_threads(options.pop("intra_op_threads"))
        if "inter_op_threads" in options:
            tf.config.threading.set_inter_op_parallelism_threads(options.pop("inter_op_threads"))
        import keras

        from lenet_keras.callbacks import TrainingTimer
        from lenet_keras.config import TrainConfig
        from lenet_keras.pipelines import load_batches
        from lenet_keras.training import build_for_config

        from lenet_keras.devices import place

        self.keras = keras
        # epoch_steps N: an "epoch" is the next N batches only (short comparisons).
        epoch_steps = options.pop("epoch_steps", None)
        # float32 unless asked, as the PyTorch loop is: fit's default (--precision auto)
        # is bf16 on some CPUs; `--variant auto:precision=auto` measures that.
        options.setdefault("precision", "float32")
        self.config = TrainConfig(**options).resolved()
        placement = place(self.config)  # the precision policy (and devices) as fit sets them
        keras.utils.set_random_seed(self.config.seed)
        self.bundle = load_batches(self.config, placement)
        with placement.scope():
            self.model = build_for_config(self.config, self.bundle)
        self.timer = TrainingTimer(self.config.batch_size)
        self.epoch_index = 0
        self.train = self.bundle.train.take(epoch_steps) if epoch_steps else self.bundle.train

    def epoch(self):
        return timed_keras_epoch(self, self.train, shuffle=False)

    def evaluate(self):
        _, accuracy = self.model.evaluate(self.bundle.test, verbose=0)
        return {"test_accuracy": float(accuracy)}

    def pipeline(self, epochs=5):
        """The training pipeline alone, consumed in-graph as fit consumes it."""
        import tensorflow as tf

        started = time.perf_counter()
        count = self.bundle.train.repeat(epochs).reduce(
            tf.constant(0, tf.int64), lambda n, batch: n + tf.cast(tf.shape(batch[0])[0], tf.int64))
        seconds = time.perf_counter() - started
        return {"images": int(count), "seconds": seconds}


class KerasIOWorker:
    """(c) keras-io's way: compile with defaults, fit on numpy arrays."""

    def __init__(self, options):
        import keras
        import numpy as np

        from lenet_keras.models import build_model
        from lenet_keras.callbacks import TrainingTimer

        x, y, self.x_test, self.y_test = train_val_arrays(options["dataset"])
        self.x, self.y = x.astype(np.float32), y
        self.batch_size = options.get("batch_size", 128)
        keras.utils.set_random_seed(42)
        self.model = build_model(options.get("model", "lenet5"), x.shape[1:], 10)
        self.model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                           metrics=["accuracy"])
        self.timer = TrainingTimer(self.batch_size)
        self.epoch_index = 0

    def epoch(self):
        row = timed_keras_epoch(self, self.x, y=self.y, batch_size=self.batch_size)
        return {**row, "jit_compile": bool(self.model.jit_compile)}

    def evaluate(self):
        _, accuracy = self.model.evaluate(self.x_test.astype("float32"), self.y_test,
                                          batch_size=self.batch_size, verbose=0)
        return {"test_accuracy": float(accuracy)}


class TorchWorker:
    """(b) A plain PyTorch loop of the same network."""

    def __init__(self, options):
        import torch
        from torch import nn
        from torch.nn import functional as F

        self.default_threads = torch.get_num_threads()
        if options.get("threads"):
            torch.set_num_threads(int(options["threads"]))
        torch.manual_seed(42)
        x, y, x_test, y_test = train_val_arrays(options["dataset"])
        # NHWC uint8 -> NCHW uint8; cast to float per batch, as the package's pipeline does.
        self.x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        self.y = torch.from_numpy(y.astype("int64"))
        self.x_test = torch.from_numpy(x_test.transpose(0, 3, 1, 2).copy())
        self.y_test = torch.from_numpy(y_test.astype("int64"))
        self.batch_size = options.get("batch_size", 128)
        self.torch, self.F = torch, F

        class LeNet5(nn.Module):
            def __init__(self):
                super().__init__()
                self.c1 = nn.Conv2d(1, 6, 5)
                self.c3 = nn.Conv2d(6, 16, 5)
                self.f5 = nn.Linear(400, 120)
                self.f6 = nn.Linear(120, 84)
                self.out = nn.Linear(84, 10)

            def forward(self, x):
                x = F.pad(x / 255.0, (2, 2, 2, 2))  # scale, then 28x28 -> 32x32
                x = F.max_pool2d(F.relu(self.c1(x)), 2)
                x = F.max_pool2d(F.relu(self.c3(x)), 2)
                x = F.relu(self.f5(x.flatten(1)))
                return self.out(F.relu(self.f6(x)))

        self.model = LeNet5()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.generator = torch.Generator().manual_seed(42)

    def calibrate(self, steps=40, repeats=2):
        """Pick the faster of 1 thread and PyTorch's default (one per core).

        With other jobs on the CPU, PyTorch's OpenMP threads can wait on each other far
        longer than they compute (measured: 300 img/s on 2 threads vs 9,000 on 1), so the
        comparison uses PyTorch's better setting, measured here.
        """
        # Calibration steps must not count as training: restore the state afterwards.
        saved = (copy.deepcopy(self.model.state_dict()),
                 copy.deepcopy(self.optimizer.state_dict()), self.generator.get_state())
        rates = {}
        for _ in range(repeats):
            for threads in sorted({1, self.default_threads}):
                self.torch.set_num_threads(threads)
                row = self.epoch(steps)
                rates.setdefault(threads, []).append(row["images"] / row["step_seconds"])
        self.model.load_state_dict(saved[0])
        self.optimizer.load_state_dict(saved[1])
        self.generator.set_state(saved[2])
        best = {threads: max(values) for threads, values in rates.items()}
        chosen = max(best, key=best.get)
        self.torch.set_num_threads(chosen)
        return {"threads": chosen, "images_per_second": best}

    def epoch(self, steps=None):
        torch, F, batch = self.torch, self.F, self.batch_size
        self.model.train()
        started, cpu_started = time.perf_counter(), time.process_time()
        order = torch.randperm(len(self.x), generator=self.generator)
        # Drop the remainder, as the package's pipeline does.
        steps = min(steps or len(self.x) // batch, len(self.x) // batch)
        for step in range(steps):
            index = order[step * batch:(step + 1) * batch]
            images, labels = self.x[index].float(), self.y[index]
            self.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(images), labels).backward()
            self.optimizer.step()
        seconds = time.perf_counter() - started
        return {"wall_seconds": seconds, "images": steps * batch, "step_seconds": seconds,
                "cpu_seconds": time.process_time() - cpu_started}

    def evaluate(self):
        torch = self.torch
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(self.x_test), 1000):
                logits = self.model(self.x_test[start:start + 1000].float())
                correct += int((logits.argmax(1) == self.y_test[start:start + 1000]).sum())
        return {"test_accuracy": correct / len(self.x_test)}


WORKERS = {"package": PackageWorker, "keras-io": KerasIOWorker, "pytorch": TorchWorker}


def worker_main(kind, options):
    """Serve commands (epoch, evaluate, pipeline, exit) as JSON lines on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # library prints must not mix with replies
    started = time.perf_counter()
    worker = WORKERS[kind](options)

    def reply(payload):
        out.write(MARK + json.dumps(payload) + "\n")
        out.flush()

    reply({"ready": True, "setup_seconds": time.perf_counter() - started})
    for line in sys.stdin:
        command = line.strip()
        if command == "exit":
            reply({"peak_rss_mb": peak_rss_mb()})
            return
        reply(getattr(worker, command)())


class Worker:
    """The main process's handle on a worker process."""

    def __init__(self, name, kind, options, env=None):
        self.name, self.kind = name, kind
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, "--options", json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, **(env or {})}, cwd=REPO,
        )
        self.epochs = []  # one dict per epoch (epoch timing + test_accuracy when evaluated)
        self.ready = None

    def read(self):
        for line in self.process.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        self.log.seek(0)
        tail = self.log.read()[-3000:]
        raise RuntimeError(f"worker {self.name} died:\n{tail}")

    def call(self, command):
        if self.ready is None:
            self.ready = self.read()
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self):
        if self.ready is None:
            self.ready = self.read()
        result = self.call("exit")
        self.process.wait(timeout=60)
        return result["peak_rss_mb"]

    def throughput(self, skip_first=False):
        """Median images/s over epochs: a few epochs slowed by other jobs don't count."""
        rows = self.epochs[1:] if skip_first else self.epochs
        rates = [per_epoch_rate(r) for r in rows if r["images"]]  # not all compile
        return statistics.median(rates) if rates else 0.0


def per_epoch_rate(row):
    return row["images"] / row["step_seconds"] if row["step_seconds"] else 0.0


def per_cpu_second(worker):
    """Median images per CPU-second of the worker process (all its threads) over epochs
    after the first: the work an image costs, which other jobs on the CPU change far less
    than they change images per wall-clock second."""
    rates = [r["images"] / r["cpu_seconds"] for r in worker.epochs[1:] if r.get("cpu_seconds")]
    return statistics.median(rates) if rates else float("nan")


def paired_ratio(a, b):
    """Median over epochs run back to back of images/s(a) / images/s(b)."""
    pairs = [per_epoch_rate(x) / per_epoch_rate(y)
             for x, y in zip(a.epochs, b.epochs) if per_epoch_rate(x) and per_epoch_rate(y)]
    return statistics.median(pairs) if pairs else float("nan")


# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------


def training_seconds(epochs):
    """Seconds in training steps, the first (compiling) execution included."""
    return sum(r["step_seconds"] for r in epochs) + (epochs[0].get("compile_seconds") or 0.0)


def race(workers, epochs, target, min_epochs):
    """Alternate epochs of the workers; each stops once it has reached the target test
    accuracy and run min_epochs, or after `epochs`. Returns time to target per worker."""
    reached = {}
    for epoch in range(1, epochs + 1):
        active = [w for w in workers if not (w.name in reached and len(w.epochs) >= min_epochs)]
        if not active:
            break
        for worker in active:
            row = worker.call("epoch")
            if target is not None:
                row.update(worker.call("evaluate"))
            worker.epochs.append(row)
            note = f" test_acc {row['test_accuracy']:.4f}" if "test_accuracy" in row else ""
            print(f"  epoch {epoch:2d} {worker.name:>10}: {per_epoch_rate(row):8.0f} img/s "
                  f"wall {row['wall_seconds']:6.2f}s{note}", flush=True)
            if (target is not None and worker.name not in reached
                    and row["test_accuracy"] >= target):
                reached[worker.name] = (epoch, training_seconds(worker.epochs))
    return reached


def full_cli_run(data, model, epochs):
    """`python cli.py fit` exactly as a user runs it; its metrics.json and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        with tempfile.TemporaryFile(mode="w+") as log:
            process = subprocess.Popen(
                [sys.executable, str(REPO / "cli.py"), "fit", "--dataset", data, "--model",
                 model, "--epochs", str(epochs), "--run-dir", str(run_dir)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            # wait4 rather than Popen.wait: it also returns the child's own peak RSS.
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
            if process.returncode != 0:
                log.seek(0)
                raise RuntimeError(f"cli.py fit failed:\n{log.read()[-3000:]}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        return {**metrics, "process_seconds": round(wall, 1),
                "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def parse_variant(text):
    """'name:key=value,KEY=value' -> (name, TrainConfig overrides, environment)."""
    name, _, spec = text.partition(":")
    options, env = {}, {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key.isupper():
            env[key] = value
            continue
        try:  # numbers and booleans (True/true), else a string
            options[key] = json.loads(value.lower() if value in ("True", "False") else value)
        except json.JSONDecodeError:
            options[key] = value
    return name or "default", options, env


def load_average():
    return os.getloadavg()[0]


def report_levers(args):
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_LEVERS)]
    workers = []
    for name, options, env in variants:
        options = {"dataset": args.data, "model": args.model, **options}
        workers.append(Worker(name, "package", options, env))
    print(f"levers: {len(workers)} package variants, {args.rounds} epochs each, interleaved "
          f"(load average {load_average():.1f})", flush=True)
    target = args.target if args.tta else None
    reached = race(workers, args.epochs if args.tta else args.rounds, target, args.rounds)
    base = workers[0]
    print(f"\n| variant | images/s | vs {base.name} | images per CPU-s | vs {base.name} "
          f"| compile s | time to {args.target:.2f} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for worker in workers:
        first = worker.epochs[0]
        tta = reached.get(worker.name)
        tta_text = f"{tta[1]:.1f} s (epoch {tta[0]})" if tta else "-"
        print(f"| {worker.name} | {worker.throughput(skip_first=True):,.0f} | "
              f"{paired_ratio(worker, base):.2f}x | {per_cpu_second(worker):,.0f} | "
              f"{per_cpu_second(worker) / per_cpu_second(base):.2f}x | "
              f"{first.get('compile_seconds') or 0:.1f} | "
              f"{tta_text} |")
    for worker in workers:
        worker.close()
    print(f"\nload average after: {load_average():.1f}")


def report(args):
    print(f"load average before: {load_average():.1f} on {os.cpu_count()} CPUs", flush=True)
    results = {"load_average_before": load_average()}
    startup = startup_seconds(args.startup_repeats, {
        "cli_help": COMMANDS["lenet-keras --help"], "import_tensorflow": COMMANDS[BASELINE]})
    results["startup"] = startup
    print(f"start-up: lenet-keras --help {startup['cli_help']:.2f}s, import tensorflow "
          f"{startup['import_tensorflow']:.2f}s", flush=True)

    common = {"dataset": args.data, "model": args.model, "batch_size": args.batch_size}
    package = Worker("package", "package", dict(common))
    others = []
    try:
        import torch  # noqa: F401

        others.append(Worker("pytorch", "pytorch", {**common, "threads": args.torch_threads}))
    except ImportError:
        print("torch is not installed: pip install -r benchmarks/requirements.txt; "
              "skipping (b)")
    keras_io = Worker("keras-io", "keras-io", dict(common)) if args.keras_io_epochs else None
    calibration = None
    if others and not args.torch_threads:
        calibration = others[0].call("calibrate")
        rates = ", ".join(f"{t} thread(s) {r:,.0f} img/s"
                          for t, r in calibration["images_per_second"].items())
        print(f"PyTorch threads: {rates} -> using {calibration['threads']}", flush=True)

    print("\n(a) package vs (b) pytorch, epochs alternated"
          + ("" if args.quick else f", until test accuracy {args.target:.2f}"), flush=True)
    reached = race([package] + others, args.rounds if args.quick else args.epochs,
                   None if args.quick else args.target, args.rounds)
    if keras_io:
        print("\n(c) keras-io model.fit on numpy, alternated with (a)", flush=True)
        saved, package.epochs = package.epochs, []
        race([keras_io, package], args.keras_io_epochs, None, args.keras_io_epochs)
        package_vs_keras_io = paired_ratio(package, keras_io)
        package.epochs = saved + package.epochs

    pipeline = [package.call("pipeline") for _ in range(5)]
    pipeline_rate = statistics.median(p["images"] / p["seconds"] for p in pipeline)

    rows = {"package": package.throughput()}
    peak = {"package": package.close()}
    for worker in others:
        rows[worker.name] = worker.throughput()
        peak[worker.name] = worker.close()
    if keras_io:
        rows["keras-io"] = keras_io.throughput(skip_first=True)
        peak["keras-io"] = keras_io.close()

    cli = None if args.quick or not args.full_run else full_cli_run(args.data, args.model,
                                                                     args.epochs)
    load_after = load_average()
    print(f"\nload average after: {load_after:.1f}\n")

    # ----------------------------------------------------------------- the table
    compile_seconds = package.epochs[0].get("compile_seconds") or 0.0
    print("| measured (images/s: median over epochs, training steps only) | value |")
    print("|---|---:|")
    print(f"| (a) package (`cli.py fit` path), images/s | {rows['package']:,.0f} |")
    if others:
        threads = (f"{calibration['threads']} thread(s); calibration "
                   + ", ".join(f"{t}: {r:,.0f}" for t, r in calibration["images_per_second"].items())
                   if calibration else f"{args.torch_threads} thread(s)")
        print(f"| (b) plain PyTorch {torch_version()} loop ({threads}), images/s | "
              f"{rows['pytorch']:,.0f} |")
        print(f"| ratio a/b (median of back-to-back epochs) | "
              f"**{paired_ratio(package, others[0]):.2f}x** |")
    if keras_io:
        print(f"| (c) keras-io `model.fit` on numpy (jit_compile="
              f"{keras_io.epochs[0].get('jit_compile')}), images/s | {rows['keras-io']:,.0f} |")
        print(f"| ratio a/c | **{package_vs_keras_io:.2f}x** |")
    if not args.quick:
        for name in ["package"] + [w.name for w in others]:
            if name in reached:
                epoch, seconds = reached[name]
                epochs = next(w.epochs for w in [package] + others if w.name == name)
                typical = statistics.median(r["step_seconds"] for r in epochs[1:] or epochs)
                estimate = epoch * typical + (epochs[0].get("compile_seconds") or 0.0)
                print(f"| {name}: time to {args.target:.2f} test accuracy (epochs x median "
                      f"epoch) | {seconds:.1f} s ({epoch} x {typical:.1f} s: {estimate:.1f} s) |")
            else:
                print(f"| {name}: time to {args.target:.2f} test accuracy | not reached in "
                      f"{args.epochs} epochs |")
    print(f"| (a) first-step compile (reported apart) | {compile_seconds:.1f} s |")
    print(f"| input pipeline alone, images/s | {pipeline_rate:,.0f} |")
    print(f"| pipeline / training consumption | **{pipeline_rate / rows['package']:.0f}x** |")
    for name, mb in peak.items():
        print(f"| peak memory (RSS), {name} worker | {mb:,.0f} MB |")
    print(f"| `lenet-keras --help` | {startup['cli_help']:.2f} s |")
    print(f"| `python -c \"import tensorflow\"` | {startup['import_tensorflow']:.2f} s |")
    print(f"| ratio --help / import tensorflow | "
          f"**{startup['cli_help'] / startup['import_tensorflow']:.2f}x** |")
    if cli:
        print(f"| `cli.py fit --epochs {args.epochs}`: metrics.json train_images_per_second "
              f"| {cli['train_images_per_second']:,.0f} |")
        print(f"| `cli.py fit`: test accuracy, train_seconds (incl. validation, callbacks) "
              f"| {cli['test_accuracy']:.4f}, {cli['train_seconds']:.1f} s |")
        print(f"| peak memory (RSS), `cli.py fit` process | {cli['peak_rss_mb']:,.0f} MB |")
    print(f"| load average before / after | {results['load_average_before']:.1f} / "
          f"{load_after:.1f} |")

    if args.json:
        results.update(images_per_second=rows, peak_rss_mb=peak, pipeline=pipeline_rate,
                       time_to_target=reached, cli_run=cli, load_average_after=load_after,
                       epochs={w.name: w.epochs for w in [package] + others})
        Path(args.json).write_text(json.dumps(results, indent=2))


def torch_version():
    import torch

    return torch.__version__.split("+")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="a dataset source the package reads (default: real Fashion-MNIST)")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=15,
                        help="most epochs per framework in the time-to-accuracy race")
    parser.add_argument("--target", type=float, default=0.90, help="test accuracy target")
    parser.add_argument("--rounds", type=int, default=3,
                        help="epochs per framework at least (throughput medians)")
    parser.add_argument("--keras-io-epochs", type=int, default=2,
                        help="epochs of (c); 0 skips it (the first is excluded, it compiles)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads (0: the faster of 1 and one per core, "
                             "measured before the race)")
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--no-full-run", dest="full_run", action="store_false",
                        help="skip the final `cli.py fit` run (metrics.json cross-check)")
    parser.add_argument("--quick", action="store_true",
                        help="throughput only: --rounds epochs, no accuracy race, no cli run")
    parser.add_argument("--levers", action="store_true", help="compare package variants")
    parser.add_argument("--variant", action="append",
                        help="with --levers: 'name:field=value,ENV_VAR=value' (repeatable)")
    parser.add_argument("--tta", action="store_true", help="with --levers: race to --target")
    parser.add_argument("--json", help="also write all numbers to this JSON file")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, json.loads(args.options))
    elif args.levers:
        report_levers(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
