"""Write the real Fashion-MNIST (Debian's IDX files) as one compressed .npz, for hosts
that have no IDX files and no TensorFlow (the GPU benchmark's machine).

    python benchmarks/fashion_mnist_npz.py .data/fashion_mnist.npz
    lenet-keras fit --backend jax --dataset .data/fashion_mnist.npz

The arrays are read by the package's own IDX reader, so training on the .npz sees the
same pixels, labels and class names as training on the folder.
"""

import argparse
from pathlib import Path

import numpy as np

from lenet_keras.sources import load_idx_folder

DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the .npz to write")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="folder of IDX files")
    args = parser.parse_args()
    arrays = load_idx_folder(args.source)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x_train=arrays.x_train, y_train=arrays.y_train,
                        x_test=arrays.x_test, y_test=arrays.y_test,
                        class_names=np.array(arrays.class_names))
    print(f"wrote {out}: {len(arrays.x_train):,} train + {len(arrays.x_test):,} test images "
          f"{arrays.x_train.shape[1:]}, {out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
