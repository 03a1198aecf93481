"""The real `lenet-keras fit --backend jax` on one GPU against a plain PyTorch loop of the
same network and batch, in one run; no TensorFlow needed.

    python benchmarks/fashion_mnist_npz.py .data/fashion_mnist.npz     # where the IDX files are
    python benchmarks/gpu_fit.py --data .data/fashion_mnist.npz --epochs 15 --out results/

(a) package  ``python -m lenet_keras fit --backend jax --dataset DATA --model lenet5`` as
             a user runs it: its metrics.json gives images/s (training steps only, the
             first, compiling execution left out) and the test accuracy of the best epoch.
             With ``--bf16`` the same command again with ``--precision mixed_bfloat16``.
(b) pytorch  a plain loop of the same LeNet-5 on the same 54,000 training images (the
             package's seeded validation hold-out removed), the same batch, Adam with the
             same peak rate and cosine decay to zero; the whole training set on the GPU
             (the loop's best case). images/s over the epochs after the first; test
             accuracy after the last epoch.

Each runs in its own process, one after the other. Writes OUT/gpu_fit.json (everything,
the package's metrics.json and history.csv included), gpu_fit.md (the table) and the
package's fit logs: few files, as the GPU machine sends back at most 8.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_package(args, out, precision):
    """`python -m lenet_keras fit` in a subprocess; its metrics.json plus wall time."""
    run_dir = Path(tempfile.mkdtemp(prefix="gpu_fit-")) / "run"
    command = [sys.executable, "-m", "lenet_keras", "fit", "--backend", "jax",
               "--dataset", args.data, "--model", args.model, "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--precision", precision,
               "--run-dir", str(run_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    print("$ " + " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    tag = "" if precision == "float32" else f"_{precision}"
    (out / f"fit_jax{tag}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    print(done.stdout[-1500:], flush=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], flush=True)
        return {"error": f"exit {done.returncode}"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    trained_on = next((line for line in done.stdout.splitlines()
                       if line.startswith("training on ")), "")
    history = (run_dir / "history.csv").read_text().splitlines()
    shutil.rmtree(run_dir.parent, ignore_errors=True)
    return {**metrics, "process_seconds": round(wall, 1), "trained_on": trained_on,
            "history_csv": history}


def run_torch(args):
    """The plain PyTorch loop (in this process: it runs after the package's)."""
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F

    from lenet_keras.config import TrainConfig
    from lenet_keras.pipelines import prepare_arrays

    # The package's own split: same training images, same seed.
    data = prepare_arrays(TrainConfig(dataset=args.data, val_split=0.1, seed=42))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(42)
    x = torch.from_numpy(data.x_train.transpose(0, 3, 1, 2).copy()).to(device)
    y = torch.from_numpy(data.y_train).to(device)
    x_test = torch.from_numpy(data.x_test.transpose(0, 3, 1, 2).copy()).to(device)
    y_test = data.y_test

    class LeNet5(nn.Module):  # lenet_keras.models.lenet5: ReLU, max-pool, 6-16-120-84
        def __init__(self):
            super().__init__()
            self.c1, self.c3 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
            self.f5, self.f6, self.out = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, images):
            h = F.pad(images / 255.0, (2, 2, 2, 2))  # scale, then 28x28 -> 32x32
            h = F.max_pool2d(F.relu(self.c1(h)), 2)
            h = F.max_pool2d(F.relu(self.c3(h)), 2)
            return self.out(F.relu(self.f6(F.relu(self.f5(h.flatten(1))))))

    model = LeNet5().to(device)
    steps = len(x) // args.batch_size  # full batches only, as the package
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds = []
    for _ in range(args.epochs):
        model.train()
        sync()
        started = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for step in range(steps):
            index = order[step * args.batch_size:(step + 1) * args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[index].float()), y[index]).backward()
            optimizer.step()
            schedule.step()
        sync()
        seconds.append(time.perf_counter() - started)
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x_test[i:i + 1000].float()).argmax(1)
                               for i in range(0, len(x_test), 1000)]).cpu().numpy()
    timed = seconds[1:] or seconds
    return {"framework": f"pytorch {torch.__version__}",
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "CPU",
            "epoch_seconds": [round(s, 3) for s in seconds],
            "train_images_per_second": round(steps * args.batch_size * len(timed) / sum(timed), 1),
            "test_accuracy": float(np.mean(predicted == y_test))}


def table(results, args):
    rows = [f"| {args.model}, batch {args.batch_size}, {args.epochs} epochs | images/s "
            "| vs PyTorch | test accuracy |", "|---|---:|---:|---:|"]
    torch_rate = results["pytorch"].get("train_images_per_second")
    for name, result in results.items():
        if "error" in result:
            rows.append(f"| {name} | failed: {result['error']} | | |")
            continue
        rate = result["train_images_per_second"]
        ratio = f"{rate / torch_rate:.2f}x" if torch_rate else "-"
        rows.append(f"| {name} | {rate:,.0f} | {ratio} | {result['test_accuracy']:.4f} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Fashion-MNIST as an .npz")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="the package's default peak rate (TrainConfig)")
    parser.add_argument("--bf16", action="store_true", help="also fit --precision mixed_bfloat16")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_fit_results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = {"package (fit --backend jax)": run_package(args, out, "float32")}
    if args.bf16:
        results["package, mixed_bfloat16"] = run_package(args, out, "mixed_bfloat16")
    print("$ plain PyTorch loop", flush=True)
    results["pytorch"] = run_torch(args)
    print(json.dumps(results["pytorch"]), flush=True)
    summary = table(results, args)
    device = next((r.get("trained_on") for r in results.values() if r.get("trained_on")), "")
    text = f"{device}\n\n{summary}\n"
    print("\n" + text, flush=True)
    (out / "gpu_fit.md").write_text(text)
    (out / "gpu_fit.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
