"""The package's LeNet-5 on the Keras JAX backend against a plain PyTorch loop, one GPU.

No TensorFlow needed: the model comes from ``lenet_keras.models`` (keras only), the data
is the embedded Fashion-MNIST sample tiled to the full 54,000 training images. Each
framework runs in its own process, one after the other, on the same GPU; images/s is
training steps only, the first (compiling) epoch left out.

    KERAS_BACKEND=jax python benchmarks/gpu_jax_vs_torch.py [--epochs 3] [--batch-size 128]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "lenet_keras" / "sample" / "fashion_mnist_sample.npz"
NUM_TRAIN = 54_000  # the package's Fashion-MNIST training split


def arrays():
    import numpy as np

    data = np.load(SAMPLE)
    x, y = data["x_train"].reshape(-1, 28, 28, 1), data["y_train"].astype("int64")
    reps = -(-NUM_TRAIN // len(x))
    x, y = np.tile(x, (reps, 1, 1, 1))[:NUM_TRAIN], np.tile(y, reps)[:NUM_TRAIN]
    return x, y, data["x_test"].reshape(-1, 28, 28, 1), data["y_test"].astype("int64")


def run_keras(args, steps_per_execution):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras

    from lenet_keras.models import build_model

    x, y, x_test, y_test = arrays()
    x, x_test = x.astype("float32"), x_test.astype("float32")  # raw 0-255, as the package feeds
    keras.utils.set_random_seed(42)
    model = build_model("lenet5", (28, 28, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"],
                  jit_compile=True, steps_per_execution=steps_per_execution)
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # logs are fetched: the device is done
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
              callbacks=[EpochTimer()])
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    steps = NUM_TRAIN // args.batch_size + (1 if NUM_TRAIN % args.batch_size else 0)
    return {"framework": f"keras {keras.__version__} / jax {jax.__version__} "
                         f"(steps_per_execution={steps_per_execution})",
            "device": str(jax.devices()[0]), "epoch_seconds": times,
            "images_per_second": NUM_TRAIN * (len(times) - 1) / sum(times[1:]),
            "sample_test_accuracy": float(accuracy), "steps_per_epoch": steps}


def run_torch(args, _):
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(42)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y, x_test, y_test = arrays()
    # The whole training set on the GPU: the best case for the plain loop.
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device)
    y = torch.from_numpy(y).to(device)

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c3 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
            self.f5, self.f6, self.out = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = F.pad(x / 255.0, (2, 2, 2, 2))
            x = F.max_pool2d(F.relu(self.c1(x)), 2)
            x = F.max_pool2d(F.relu(self.c3(x)), 2)
            return self.out(F.relu(self.f6(F.relu(self.f5(x.flatten(1))))))

    model = LeNet5().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, batch = [], args.batch_size
    for _ in range(args.epochs):
        torch.cuda.synchronize() if device.type == "cuda" else None
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), batch):
            index = order[i:i + batch]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[index].float()), y[index]).backward()
            optimizer.step()
        torch.cuda.synchronize() if device.type == "cuda" else None
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        xt = torch.from_numpy(x_test.transpose(0, 3, 1, 2).copy()).to(device).float()
        accuracy = (model(xt).argmax(1).cpu().numpy() == y_test).mean()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    return {"framework": f"pytorch {torch.__version__}", "device": name, "epoch_seconds": times,
            "images_per_second": len(x) * (len(times) - 1) / sum(times[1:]),
            "sample_test_accuracy": float(accuracy)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (first excluded)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--spe", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        result = {"keras": run_keras, "torch": run_torch}[args.only](args, args.spe)
        print("@@" + json.dumps(result), flush=True)
        return
    runs = [("keras", spe) for spe in args.steps_per_execution] + [("torch", 1)]
    results = []
    for name, spe in runs:
        command = [sys.executable, __file__, "--only", name, "--spe", str(spe),
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
        done = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "KERAS_BACKEND": "jax"})
        lines = [l for l in done.stdout.splitlines() if l.startswith("@@")]
        if not lines:
            print(f"{name} (spe {spe}) failed:\n{done.stderr[-3000:]}", flush=True)
            continue
        result = json.loads(lines[-1][2:])
        results.append(result)
        print(json.dumps(result), flush=True)
    torch_rate = next((r["images_per_second"] for r in results if r["framework"].startswith("pytorch")), None)
    print(f"\n| framework (batch {args.batch_size}, {results[0]['device'] if results else '?'}) "
          "| images/s | vs PyTorch |\n|---|---:|---:|")
    for r in results:
        ratio = f"{r['images_per_second'] / torch_rate:.2f}x" if torch_rate else "-"
        print(f"| {r['framework']} | {r['images_per_second']:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
