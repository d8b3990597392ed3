#!/usr/bin/env bash
# The GPU benchmark in one command, for a machine with one GPU (target: under 8 minutes on one H100):
#
#   benchmarks/gpu.sh              # cifar10_fast (3 seeds), then cifar10_resnet9 (24 epochs, 2 seeds), trainer=gpu
#   benchmarks/gpu.sh --compile    # the same with speed.compile=true
#   benchmarks/gpu.sh --record     # also append both summaries to benchmarks/RESULTS.md
#   benchmarks/gpu.sh --quick      # 1 seed each, synthetic images, small net, 3 steps: checks the script (any machine)
#
# Needs python3 with torch, pytorch-lightning, torchmetrics, tensorboard, rich, matplotlib, PyYAML. Hydra is often
# missing on a GPU machine without internet: put the wheels of hydra-core, omegaconf and antlr4-python3-runtime==4.9.3
# (and, for augment=albumentations only, albumentations and its dependencies) in benchmarks/wheels/ or .whl/ (or a
# folder named by $WHEELS); they are installed from there with no index into /tmp/site. The batched data path
# (both recipes) never imports albumentations, which this script checks.
# Data: the offline CIFAR-10 copy when ../shared/data (or shared/data) holds it, else a torchvision download.
# Prints per recipe: test accuracy mean and spread over seeds, training and total wall time, training images/s,
# GPU name, torch and Lightning versions. A log goes to $OUT/gpu_benchmark.log (or /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
extra=(trainer=gpu)
record=()
quick=()
seeds_fast=(0 1 2)
seeds_resnet=(0 1)
for arg in "$@"; do
  case "$arg" in
    --compile) extra+=(speed.compile=true) ;;
    --record) record=(--record) ;;
    --quick) quick=(--quick); seeds_fast=(0); seeds_resnet=(0) ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (use --compile, --record, --quick)" >&2; exit 2 ;;
  esac
done
for dir in benchmarks/wheels .whl "${WHEELS:-}"; do
  if [ -n "$dir" ] && compgen -G "$dir/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$dir"/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
  fi
done
export PYTHONPATH=$(pwd):${PYTHONPATH:-}
python3 -c "import hydra, omegaconf" 2>/dev/null || {
  echo "hydra-core / omegaconf are not importable: put their wheels in benchmarks/wheels/ (see the top of $0)" >&2
  exit 1
}
python3 - <<'PY'
import sys
import datamodules.augment, datamodules.cifar10, datamodules.tensor_images  # the batched path of both recipes
assert "albumentations" not in sys.modules, "the batched data path imports albumentations"
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
log=${OUT:-/tmp}/gpu_benchmark.log
start=$(date +%s)
{
  python3 benchmarks/cifar10_fast.py --download --experiment cifar10_fast --seeds "${seeds_fast[@]}" "${quick[@]}" "${record[@]}" --extra "${extra[@]}"
  python3 benchmarks/cifar10_fast.py --download --experiment cifar10_resnet9 --seeds "${seeds_resnet[@]}" "${quick[@]}" "${record[@]}" --extra "${extra[@]}"
  echo "gpu.sh total: $(( $(date +%s) - start )) s"
} 2>&1 | tee "$log"
