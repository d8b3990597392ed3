"""Run several benchmark scripts' command lines in ONE Python process, one after another, each as ``__main__``
with its own ``sys.argv`` and its stdout/stderr captured: the speed tests pay torch's imports once instead of once
per script. Each script's own subprocesses (train.py, the reference loop) are still subprocesses.

    python tests/quick_benchmarks.py OUT.json '[["overhead.py", "--quick"], ...]'

Before any script runs, it also records whether importing the batched data path pulled in albumentations (that
check needs a process that has not imported albumentations yet). OUT.json: {"albumentations_imported": bool,
"runs": [{"argv": [...], "returncode": int, "stdout": str, "stderr": str, "wall_s": float}, ...]}.
"""
from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(argv: list[str]) -> dict:
    import torch

    threads, start = torch.get_num_threads(), time.perf_counter()
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = sys.argv
    sys.argv = [str(ROOT / "benchmarks" / argv[0]), *argv[1:]]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int) and exit_.code is not None:
            err.write(str(exit_.code))
    except Exception:  # noqa: BLE001 - reported to the test as a failed run
        code = 1
        err.write(traceback.format_exc())
    finally:
        sys.argv = saved
        torch.set_num_threads(threads)  # a script may change it; the next one starts as a fresh process would
    return {"argv": argv, "returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
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
