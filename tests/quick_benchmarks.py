"""Run several benchmark scripts' command lines in ONE Python process, one after another, each as ``__main__``
with its own ``sys.argv`` and its stdout/stderr captured: the speed tests pay torch's imports once instead of once
per script. Each script's own subprocesses (train.py, the reference loop) are still subprocesses.

    python tests/quick_benchmarks.py OUT.json '[["overhead.py", "--quick"], ...]'

Before any script runs, it also records whether importing the batched data path pulled in albumentations (that
check needs a process that has not imported albumentations yet). OUT.json: {"albumentations_imported": bool,
"runs": [{"argv": [...], "returncode": int, "stdout": str, "stderr": str, "wall_s": float}, ...]}.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from runs_table import run_as_main  # noqa: E402


def run_script(argv: list[str]) -> dict:
    import torch

    threads, start = torch.get_num_threads(), time.perf_counter()
    try:
        code, out, err = run_as_main(ROOT / "benchmarks" / argv[0], argv[1:])
    finally:
        torch.set_num_threads(threads)  # a script may change it; the next one starts as a fresh process would
    return {"argv": argv, "returncode": code, "stdout": out, "stderr": err,
            "wall_s": round(time.perf_counter() - start, 2)}


def main() -> None:
    out_path, commands = Path(sys.argv[1]), json.loads(sys.argv[2])
    sys.path.insert(0, str(ROOT))
    import datamodules.augment, datamodules.cifar10, datamodules.synthetic, datamodules.tensor_images  # noqa: E401,F401

    report = {"albumentations_imported": "albumentations" in sys.modules,
              "runs": [run_script(argv) for argv in commands]}
    out_path.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
