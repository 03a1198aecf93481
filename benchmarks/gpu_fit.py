"""The real `lenet-keras fit --backend jax` on one GPU against a plain PyTorch loop of the
same network and batch, and with flips against without, in one run; no TensorFlow needed.

    python benchmarks/fashion_mnist_npz.py .data/fashion_mnist.npz     # where the IDX files are
    python benchmarks/gpu_fit.py --data .data/fashion_mnist.npz --epochs 15 --out results/

(a) package  ``python -m lenet_keras fit --backend jax --dataset DATA --model lenet5`` as
             a user runs it: its metrics.json gives images/s (training steps only, the
             first, compiling execution left out) and the test accuracy of the best epoch.
             With ``--bf16`` the same command again with ``--precision mixed_bfloat16``.
(b) flips    ``fit --model mobilenet_mini`` (``--flip-model``) with ``--augment none`` and
             with ``--augment flip``: what augmentation costs (flip / none).
(c) pytorch  a plain loop of the same LeNet-5 on the same 54,000 training images (the
             package's seeded validation hold-out removed), the same batch, Adam with the
             same peak rate and cosine decay to zero; the whole training set on the GPU
             (the loop's best case). images/s over the epochs after the first; test
             accuracy after the last epoch.

Each runs in its own process, one after the other. ``--tree before=PATH`` runs every
package case from another checkout too (e.g. the code before a change), alternating
with this one in every round (``--rounds``), so both see the same machine; ratios are
medians of the rounds' pairs. Writes OUT/gpu_fit.json (everything, the package's
metrics.json and history.csv included), gpu_fit.md (the table) and fit_logs.txt: few
files, as the GPU machine sends back at most 8.
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


def run_package(tree, fit_args, log):
    """`python -m lenet_keras fit FIT_ARGS` from checkout ``tree``, in a subprocess: its
    metrics.json plus wall time; its output goes to ``log``."""
    run_dir = Path(tempfile.mkdtemp(prefix="gpu_fit-")) / "run"
    command = [sys.executable, "-m", "lenet_keras", "fit", "--backend", "jax", *fit_args,
               "--run-dir", str(run_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    print(f"$ ({tree}) " + " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    with log.open("a") as file:
        file.write(f"$ ({tree}) {' '.join(command[1:])}\n{done.stdout}\n--- stderr ---\n"
                   f"{done.stderr[-5000:]}\n\n")
    print(done.stdout[-800:], flush=True)
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


def package_cases(args):
    """{case name: fit arguments}: lenet5 (and bf16), then the flip model without and
    with flips."""
    common = ["--batch-size", str(args.batch_size)]
    lenet = ["--dataset", args.data, "--model", args.model, "--epochs", str(args.epochs), *common]
    cases = {f"{args.model} float32": [*lenet, "--precision", "float32"]} if args.model else {}
    if args.model and args.bf16:
        cases[f"{args.model} mixed_bfloat16"] = [*lenet, "--precision", "mixed_bfloat16"]
    if args.model and args.spe1:  # the CLI has no switch for it; a config file sets it
        spe1 = Path(args.out).resolve() / "steps_per_execution_1.json"
        spe1.write_text(json.dumps({"steps_per_execution": 1}))
        cases[f"{args.model} float32, 1 step per execution"] = [*lenet, "--config", str(spe1)]
    if args.flip_model:
        flip = ["--dataset", args.flip_data or args.data, "--model", args.flip_model,
                "--epochs", str(args.flip_epochs), *common]
        cases[f"{args.flip_model} --augment none"] = [*flip, "--augment", "none"]
        cases[f"{args.flip_model} --augment flip"] = [*flip, "--augment", "flip"]
    return cases


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


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def rate(result):
    return result.get("train_images_per_second") if "error" not in result else None


def table(runs, torch_result, trees, args):
    """The markdown table: per case and tree, median images/s, vs PyTorch (the lenet
    cases), test accuracy; then flip / none and tree / first tree, medians of the rounds'
    pairs."""
    rows = [f"| batch {args.batch_size} | checkout | images/s | vs PyTorch | test accuracy |",
            "|---|---|---:|---:|---:|"]
    torch_rate = torch_result.get("train_images_per_second") if torch_result else None
    for (case, tree), results in runs.items():
        rates = [rate(r) for r in results if rate(r)]
        if not rates:
            why = results[0].get("error") or "no step timed: more epochs"
            rows.append(f"| {case} | {tree} | {why} | | |")
            continue
        versus = (f"{median(rates) / torch_rate:.2f}x" if torch_rate
                  and case.startswith(args.model + " ") else "")
        accuracy = median([r["test_accuracy"] for r in results if rate(r)])
        rows.append(f"| {case} | {tree} | {median(rates):,.0f} | {versus} | {accuracy:.4f} |")
    if torch_result:
        rows.append(f"| {args.model} (plain loop) | {torch_result['framework']} | "
                    f"{torch_rate:,.0f} | 1.00x | {torch_result['test_accuracy']:.4f} |")

    def paired(a, b):
        pairs = [rate(x) / rate(y) for x, y in zip(runs.get(a, []), runs.get(b, []))
                 if rate(x) and rate(y)]
        return f"{median(pairs):.2f}x" if pairs else "-"

    cases = list(dict.fromkeys(case for case, _ in runs))
    lines = []
    if args.flip_model:
        flip, none = f"{args.flip_model} --augment flip", f"{args.flip_model} --augment none"
        lines += [f"- {args.flip_model} flip / none ({tree}): {paired((flip, tree), (none, tree))}"
                  for tree in trees]
    lines += [f"- {case}: {tree} / {trees[0]}: {paired((case, tree), (case, trees[0]))}"
              for tree in trees[1:] for case in cases]
    return "\n".join(rows) + ("\n\n" + "\n".join(lines) if lines else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Fashion-MNIST as an .npz")
    parser.add_argument("--model", default="lenet5", help="'' skips its cases")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="the package's default peak rate (TrainConfig)")
    parser.add_argument("--bf16", action="store_true", help="also fit --precision mixed_bfloat16")
    parser.add_argument("--spe1", action="store_true",
                        help="also fit with 1 step per execution (the default is 64)")
    parser.add_argument("--flip-model", default="mobilenet_mini",
                        help="fit with --augment none and flip ('' to skip)")
    parser.add_argument("--flip-epochs", type=int, default=5)
    parser.add_argument("--flip-data", help="the flip model's dataset (default: --data)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="another checkout to run every package case from, alternating")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch loop")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_fit_results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "fit_logs.txt"
    log.write_text("")
    # Absolute paths: each checkout's fit runs in that checkout.
    trees = {"this": REPO, **{name: Path(path).resolve() for name, path in
                              (t.split("=", 1) for t in args.tree)}}
    for name in ("data", "flip_data"):
        path = getattr(args, name)
        if path and Path(path).exists():
            setattr(args, name, str(Path(path).resolve()))

    runs = {}
    for _ in range(args.rounds):  # alternate checkouts case by case: same machine load
        for case, fit_args in package_cases(args).items():
            for name, tree in trees.items():
                runs.setdefault((case, name), []).append(run_package(tree, fit_args, log))
    torch_result = None
    if not args.no_torch:
        print("$ plain PyTorch loop", flush=True)
        torch_result = run_torch(args)
        print(json.dumps(torch_result), flush=True)
    summary = table(runs, torch_result, list(trees), args)
    device = next((r.get("trained_on") for rs in runs.values() for r in rs
                   if r.get("trained_on")), "")
    text = f"{device}\n\n{summary}\n"
    print("\n" + text, flush=True)
    (out / "gpu_fit.md").write_text(text)
    results = {f"{case} [{tree}]": rs for (case, tree), rs in runs.items()}
    (out / "gpu_fit.json").write_text(json.dumps(
        {"args": vars(args), "results": results, "pytorch": torch_result}, indent=2))


if __name__ == "__main__":
    main()
