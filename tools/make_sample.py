"""Rebuild lenet_keras/sample/fashion_mnist_sample.npz from Debian's Fashion-MNIST.

A stratified, seeded subset: TRAIN_PER_CLASS training and TEST_PER_CLASS test images of
each of the 10 classes. Run: PYTHONPATH=. python tools/make_sample.py [/usr/share/datasets/fashion-mnist]
"""

import sys

import numpy as np

from lenet_keras.sources import FASHION_MNIST_CLASSES, SAMPLE_PATH, load_idx_folder

TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100


def stratified(x, y, per_class, rng):
    picks = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                            for c in range(10)])
    picks = rng.permutation(picks)
    return x[picks, ..., 0], y[picks].astype(np.uint8)


def main(folder="/usr/share/datasets/fashion-mnist"):
    arrays = load_idx_folder(folder)
    rng = np.random.default_rng(0)
    x_train, y_train = stratified(arrays.x_train, arrays.y_train, TRAIN_PER_CLASS, rng)
    x_test, y_test = stratified(arrays.x_test, arrays.y_test, TEST_PER_CLASS, rng)
    np.savez_compressed(SAMPLE_PATH, x_train=x_train, y_train=y_train, x_test=x_test,
                        y_test=y_test, class_names=np.array(FASHION_MNIST_CLASSES))
    print(f"wrote {SAMPLE_PATH}: {len(x_train)} train, {len(x_test)} test")


if __name__ == "__main__":
    main(*sys.argv[1:])
