"""How long a user waits before the first line: the CLI's start-up against TensorFlow's.

    python benchmarks/startup.py [--repeats 5]

Each command runs in a fresh process (as a user runs it), the commands alternating so a
busy spell hits all of them; prints the median seconds of each and its ratio to
``python -c "import tensorflow"``. A mistake that needs no TensorFlow (an unknown model
name) should cost a fraction of the import.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "lenet-keras --help": [sys.executable, "-m", "lenet_keras", "--help"],
    "lenet-keras fit --model no_such_model": [sys.executable, "-m", "lenet_keras", "fit",
                                              "--model", "no_such_model"],
    'python -c "import lenet_keras"': [sys.executable, "-c", "import lenet_keras"],
    'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
}
BASELINE = 'python -c "import tensorflow"'


def startup_seconds(repeats, commands=COMMANDS):
    """{name: median wall seconds} over ``repeats`` alternating runs (in an empty folder)."""
    times = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, cwd=folder, capture_output=True)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    medians = startup_seconds(args.repeats)
    print("| command | median seconds | / import tensorflow |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        print(f"| `{name}` | {seconds:.2f} | {seconds / medians[BASELINE]:.2f}x |")


if __name__ == "__main__":
    main()
