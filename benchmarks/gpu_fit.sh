#!/usr/bin/env bash
# One command for a GPU host with JAX (CUDA) and PyTorch but no TensorFlow and no network:
# the real `lenet-keras fit --backend jax` on Fashion-MNIST against a plain PyTorch loop.
#
#   here:  python benchmarks/fashion_mnist_npz.py .data/fashion_mnist.npz
#          python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#              --platform manylinux2014_x86_64 --platform any -d .whl keras namex optree
#   there: bash benchmarks/gpu_fit.sh            (results in $OUT, default ./gpu_fit_results)
#
# EPOCHS=2 FLIP_EPOCHS=1 bash benchmarks/gpu_fit.sh is the quick check (it runs on a CPU too).
set -euo pipefail
cd "$(dirname "$0")/.."
# gpu_fit.py's PyTorch loop reads the data with the package's own reader.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax  # there is no TensorFlow there
OUT="${OUT:-gpu_fit_results}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
# Keras and the two packages it needs that such hosts lack travel as wheels in .whl/.
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/lenet_keras_site .whl/*.whl
  export PYTHONPATH="/tmp/lenet_keras_site${PYTHONPATH:+:$PYTHONPATH}"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PYTHON" -c "import jax, keras, torch; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__, '| torch', torch.__version__)"
} 2>&1 | tee "$OUT/versions.txt"
# BEFORE=PATH: also run every package case from that checkout (e.g. here `mkdir .before &&
# git archive <commit> | tar -x -C .before`, carried along), alternating over ROUNDS rounds.
"$PYTHON" benchmarks/gpu_fit.py --data "${DATA:-.data/fashion_mnist.npz}" \
  --epochs "${EPOCHS:-15}" --model "${MODEL:-lenet5}" --bf16 --spe1 --out "$OUT" \
  --flip-model "${FLIP_MODEL-mobilenet_mini}" --flip-epochs "${FLIP_EPOCHS:-5}" \
  --rounds "${ROUNDS:-1}" ${BEFORE:+--tree "before=$BEFORE"} 2>&1 | tee "$OUT/gpu_fit.log"
