"""JAX: ``steps_per_execution`` training steps as ONE compiled program (``lax.scan``).

Keras 3.15's JAX trainer runs ``steps_per_execution`` as a Python loop that dispatches the
jitted training step once per batch. On a GPU a LeNet-5 step at batch 128 is a few tens of
microseconds of arithmetic, less than that dispatch (the state's pytree flattened, the
arguments checked, a launch per step), so the loop, not the GPU, likely sets the pace. Here
the batches of one execution are stacked on the device and one jitted ``lax.scan`` runs the
very same ``model.train_step`` over them: one dispatch per execution, and XLA sees the
whole loop. The arithmetic is unchanged: same steps, same order, same optimizer state
(``tests/test_backends.py`` checks that the weights agree with Keras' own loop).

Off until measured: a one-process JAX run uses it only on the platforms in
``FUSED_ON`` (``training.build_for_config``). On a CPU XLA ran the scanned lenet5 at
0.23-0.24x Keras' loop (fully unrolled 0.35-0.69x; ``benchmarks/jax_fused_ab.py``, AMD
EPYC, 2 cores, sample data), so a CPU keeps Keras' loop; no GPU has run it yet.
``benchmarks/gpu_fit.sh`` runs that A/B first on a GPU host: add "gpu" below where it
wins. A distributed run always keeps Keras' loop, which places each batch's shards.
"""

# JAX platforms (jax.default_backend()) where one scan per execution measured faster.
FUSED_ON = ()


def fuses_here():
    """Whether this JAX platform is one where the scan measured faster (``FUSED_ON``)."""
    import jax

    return jax.default_backend() in FUSED_ON


def fuse_steps(model, unroll=1):
    """Give a compiled JAX ``model`` a training function that runs each execution's
    batches in one ``lax.scan`` (``unroll`` steps per loop iteration); returns the model.
    A no-op for one step per execution or an eager (``jit_compile=False``) model."""
    steps = model.steps_per_execution
    if steps <= 1 or not model.jit_compile or model.run_eagerly:
        return model
    import jax

    def scan_steps(state, batches):
        """The same (logs, state) as ``steps`` calls of ``train_step``, in one program."""
        stacked = jax.tree.map(lambda *arrays: jax.numpy.stack(arrays), *batches)

        def step(state, batch):
            logs, new_state = model.train_step(state, batch)
            # lax.scan needs the carry's types unchanged: a counter may come back weakly
            # typed, so each variable keeps the dtype it came in with.
            return jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, state), logs

        state, logs = jax.lax.scan(step, state, stacked, unroll=unroll)
        return jax.tree.map(lambda values: values[-1], logs), state  # logs after the last step

    # The state is donated, as in Keras' own jitted step: updated in place on the device.
    # One compile per number of batches: a full execution and an epoch's shorter last one.
    compiled = jax.jit(scan_steps, donate_argnums=0)

    def train_function(state, iterator):
        iterator = iter(iterator)
        batches = [next(iterator)]  # StopIteration here ends the epoch, as in Keras' loop
        for batch in iterator:
            batches.append(batch)
            if len(batches) == steps:
                break
        return compiled(state, tuple(batches))

    def make_train_function(force=False):
        if model.train_function is None or force:
            model.train_function = train_function

    model.make_train_function = make_train_function
    return model
