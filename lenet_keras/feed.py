"""Backend-neutral input: in-memory arrays fed as a ``keras.utils.PyDataset``.

The JAX and torch backends train from here, so a host without TensorFlow (many GPU hosts
have JAX only) trains on every local source: the embedded sample, .npz, IDX folders and
image folders. It does what ``pipelines.array_pipeline`` does with tf.data: a new seeded
permutation every epoch, full training batches only (unless one partial batch is all
there is), float32 pixels 0..255. It does not augment: on these backends the augmenter
(``pipelines.augmenter``) runs inside the model's compiled training step
(``training.build_for_config``), not eagerly per batch on the host.

With ``on_device`` (JAX on one device) the uint8 images are put on the device once and
every batch is gathered and cast there by one jitted call, so no float32 batch is copied
from the host per step; only the batch's indices are.

For a data-parallel run every process builds the same global batches and keeps its own
share (``shard``), so each process reads only the images it trains on and the global
batch is still ``--batch-size``.

    >>> batches = ArrayBatches(x, y, 128, training=True, seed=42)
    >>> images, labels = batches[0]            # float32 [128,H,W,C], int64 [128]
"""

import numpy as np

from lenet_keras.quiet import import_keras

keras = import_keras()

# Training + validation images larger than this stay on the host (a big image folder
# would take the GPU memory the model needs); Fashion-MNIST is 47 MB, CIFAR-10 150 MB.
DEVICE_DATA_LIMIT_BYTES = 2 * 1024**3


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (float32 images, int64 labels) over uint8 arrays.

    Args:
        x, y: uint8 images [N,H,W,C] and int64 labels [N].
        batch_size: the global batch (all processes together).
        training: reshuffle every epoch (seeded) and drop a ragged last batch.
        seed: shuffling seed.
        shard: (index, count): this process's share of every global batch.
        multiple: every batch holds a multiple of this many images (the number of
            replicas: each device gets the same share). A ragged last batch of an
            evaluation split is cut down to one, dropping fewer than ``multiple`` images.
        on_device: keep the arrays on the JAX device and gather batches there (batches
            are then jax arrays; one process, no distribution).
    """

    def __init__(self, x, y, batch_size, *, training=False, seed=42, shard=(0, 1),
                 multiple=1, on_device=False):
        super().__init__()
        self.x, self.y = x, y
        self.batch_size, self.training, self.seed = batch_size, training, seed
        self.shard_index, self.shard_count = shard
        self.multiple = multiple
        self.epoch = 0
        self._order = self._permutation()
        self._batches = self._bounds()  # once: __getitem__ runs every step
        self._gather = _device_gather(x, y) if on_device else None

    def _permutation(self):
        if not self.training:
            return np.arange(len(self.x))
        # One permutation per epoch, fixed by (seed, epoch): a resumed run replays them.
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def _bounds(self):
        """(start, stop) of every global batch."""
        count = len(self.x)
        full = count // self.batch_size
        bounds = [(i * self.batch_size, (i + 1) * self.batch_size) for i in range(full)]
        rest = count - full * self.batch_size
        if rest and (not self.training or not full):  # a ragged last batch
            rest -= rest % self.multiple
            if rest:
                bounds.append((full * self.batch_size, full * self.batch_size + rest))
        return bounds

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        start, stop = self._batches[index]
        share = (stop - start) // self.shard_count
        start += self.shard_index * share
        indices = np.sort(self._order[start:start + share])  # sorted: faster gather
        if self._gather is not None:
            return self._gather(indices)
        return self.x[indices].astype(np.float32), self.y[indices]

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch):
        """Shuffle as epoch ``epoch`` (training calls this as each epoch begins, so a
        resumed run replays the permutations of the epochs it resumes)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._order = self._permutation()

    @property
    def num_images(self):
        """Images per epoch, all processes together."""
        return sum(stop - start for start, stop in self._batches)


def _device_gather(x, y):
    """indices -> (float32 images, labels) gathered from copies of x, y on the JAX device.

    The arrays are arguments of the jitted function, not constants closed over, which
    XLA would embed in the program (tens of MB for Fashion-MNIST).
    """
    import jax

    x, y = jax.device_put(x), jax.device_put(y)
    take = jax.jit(lambda x, y, i: (x[i].astype(np.float32), y[i]))
    return lambda indices: take(x, y, indices)


def feed_bundle(prepared, *, batch_size=128, seed=42, shard=(0, 1), multiple=1,
                on_device=False):
    """PyDatasets over PreparedArrays: the DatasetBundle the JAX and torch backends use.

    ``shard`` and ``multiple`` apply to training and validation, which run distributed;
    the test split is whole: the final evaluation runs undistributed, in each process,
    from host arrays. ``on_device`` puts training and validation on the device when they
    fit in ``DEVICE_DATA_LIMIT_BYTES``.
    """
    on_device = on_device and (prepared.x_train.nbytes + prepared.x_val.nbytes
                               <= DEVICE_DATA_LIMIT_BYTES)

    def batches(x, y, training=False):
        return ArrayBatches(x, y, batch_size, training=training, seed=seed, shard=shard,
                            multiple=multiple, on_device=on_device)

    val = batches(prepared.x_val, prepared.y_val) if len(prepared.x_val) else None
    train = batches(prepared.x_train, prepared.y_train, training=True)
    bundle = prepared.bundle(train=train, val=val,
                             test=ArrayBatches(prepared.x_test, prepared.y_test, batch_size))
    bundle.set_epoch = train.set_epoch
    return bundle
