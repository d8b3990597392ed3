#!/usr/bin/env bash
# The GPU benchmark, prepared for one call on a lent GPU machine (device tool; ~10 minutes on one H100).
# That machine has torch, pytorch-lightning, torchmetrics, tensorboard, rich and matplotlib but not Hydra: carry
# hydra-core, omegaconf and antlr4-python3-runtime==4.9.3 as wheels in .whl/ (see the device README), and the
# CIFAR-10 copy's script + npz (../shared/data or shared/data). Results go to stdout and $OUT (if set).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$(pwd):${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"
log=${OUT:-/tmp}/gpu_benchmark.log
{
  python3 benchmarks/cifar10_fast.py --experiment cifar10_fast --seeds 0 1 2 --extra trainer=gpu
  python3 benchmarks/cifar10_fast.py --experiment cifar10_resnet9 --seeds 0 1 --extra trainer=gpu
} 2>&1 | tee "$log"
