#!/usr/bin/env bash
# One command for a GPU host with JAX (CUDA) and PyTorch but no TensorFlow and no network:
# the real `lenet-keras fit --backend jax` on Fashion-MNIST against a plain PyTorch loop.
#
#   here:  python benchmarks/fashion_mnist_npz.py .data/fashion_mnist.npz
#          python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#              --implementation cp --platform manylinux_2_28_x86_64 \
#              --platform manylinux2014_x86_64 --platform any -d .whl keras==3.15.1 namex optree
#   there: bash benchmarks/gpu_fit.sh            (results in $OUT, default ./gpu_fit_results)
#
# EPOCHS=2 FLIP_EPOCHS=1 bash benchmarks/gpu_fit.sh is the quick check (it runs on a CPU too).
# It first runs benchmarks/jax_fused_ab.py (FUSED_AB=0 skips it): whether one lax.scan per
# execution beats Keras' per-step loop there (lenet_keras/fused_steps.py, FUSED_ON);
# BF16=0 and SPE1=0 skip the bf16 and 1-step-per-execution fits.
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
# Keras' per-step loop against one lax.scan per execution (lenet_keras/fused_steps.py), in
# one process each: lenet5, then the flip model with flips (FUSED_AB=0 skips).
if [ "${FUSED_AB:-1}" = 1 ]; then
  "$PYTHON" benchmarks/jax_fused_ab.py --data "${DATA:-.data/fashion_mnist.npz}" \
    --epochs 3 --variant "keras loop" --variant scan --variant "scan, unrolled" 2>&1 | tee "$OUT/fused_ab.log" || echo "fused A/B failed"
  [ -z "${FLIP_MODEL-mobilenet_mini}" ] || "$PYTHON" benchmarks/jax_fused_ab.py \
    --data "${DATA:-.data/fashion_mnist.npz}" --model "${FLIP_MODEL-mobilenet_mini}" \
    --augment flip --epochs 1 --variant "keras loop" --variant scan 2>&1 | tee -a "$OUT/fused_ab.log" || echo "fused A/B failed"
fi
# BEFORE=PATH: also run every package case from that checkout (e.g. here `mkdir .before &&
# git archive <commit> | tar -x -C .before`, carried along), alternating over ROUNDS rounds.
"$PYTHON" benchmarks/gpu_fit.py --data "${DATA:-.data/fashion_mnist.npz}" \
  --epochs "${EPOCHS:-15}" --model "${MODEL:-lenet5}" --out "$OUT" \
  $([ "${BF16:-1}" = 1 ] && echo --bf16) $([ "${SPE1:-1}" = 1 ] && echo --spe1) \
  --flip-model "${FLIP_MODEL-mobilenet_mini}" --flip-epochs "${FLIP_EPOCHS:-5}" \
  --rounds "${ROUNDS:-1}" ${BEFORE:+--tree "before=$BEFORE"} 2>&1 | tee "$OUT/gpu_fit.log"
