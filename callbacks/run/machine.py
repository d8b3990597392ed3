"""The machine a run trains on: the CPU threads torch may use (cores, OMP_NUM_THREADS, CPU affinity, cgroup limits,
shared among a sweep's parallel jobs), the CPU fallback of a GPU config on a machine without a GPU, and the speed
settings this machine runs fastest (what ``trainer=auto`` picks)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from callbacks.run.hydra_job import is_multirun
from callbacks.run.intervals import devices_per_node


def fall_back_without_gpu(cfg: DictConfig) -> None:
    """A config that asks for a GPU (trainer=gpu/ddp) on a machine without one runs on the CPU instead, with a
    warning: fp32 instead of fp16 (bf16 runs on CPUs and is kept), no cudnn.benchmark, no compile (minutes of
    compiling on few cores). channels_last is kept: it is oneDNN's native conv layout on x86 CPUs too (same math,
    faster). Explicit CPU configs are left as they are."""
    if torch.cuda.is_available():
        return
    wants_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    fallbacks = {
        "trainer.accelerator": (wants_gpu, "cpu"),
        "trainer.precision": (str(cfg.trainer.get("precision")).startswith("16"), "32-true"),  # fp16, not bf16
        "trainer.benchmark": (wants_gpu and bool(cfg.trainer.get("benchmark")), False),
        "speed.compile": (wants_gpu and bool(cfg.speed.get("compile")), False),
    }
    changed = [f"{key}={value}" for key, (fall_back, value) in fallbacks.items() if fall_back]
    for key, (fall_back, value) in fallbacks.items():
        if fall_back:
            OmegaConf.update(cfg, key, value)
    if changed:
        warnings.warn(f"No CUDA GPU found: falling back to {', '.join(changed)}", stacklevel=2)
    warn_emulated_bf16(cfg, cpu_flags())


def warn_emulated_bf16(cfg: DictConfig, flags: set[str] | None) -> None:
    """bf16 on a CPU without native bf16 (``flags``: its /proc/cpuinfo flags; None: unknown, no warning) is emulated:
    slower than fp32 (trainer=cpu_fast took 2.75x trainer=auto's time on the smoke run of an AVX2 CPU), said at
    start-up; the precision asked for stays."""
    precision = str(cfg.trainer.get("precision"))
    if flags is not None and precision.startswith("bf16") and not any(f in flags for f in CPU_BF16_FLAGS):
        warnings.warn(f"trainer.precision={precision} on a CPU without {' or '.join(CPU_BF16_FLAGS)}: bf16 is "
                      f"emulated here and slower than fp32; trainer=cpu (fp32) or trainer=auto (it picks for this "
                      f"CPU) runs faster", stacklevel=2)


# CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic: AVX-512 BF16 (dot products) and AMX (tile matmuls).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class SpeedSettings:
    """The fastest settings known to be safe on this machine, and why (``trainer=auto``; train.py writes them into
    the config)."""
    precision: str        # a Lightning precision: bf16-mixed, 16-mixed or 32-true
    channels_last: bool   # NHWC memory format
    benchmark: bool       # cudnn.benchmark
    reason: str           # what about the machine decided it, e.g. "CPU has avx512_bf16"


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (Linux x86: the ``flags`` line of /proc/cpuinfo); None where there is no such file.
    (torch.backends.cpu.get_cpu_capability() names only the vector ISA, e.g. AVX512, and oneDNN's bf16 check
    torch.ops.mkldnn._is_mkldnn_bf16_supported() is private and true on any AVX-512 CPU, emulated bf16 included.)"""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def speed_settings(accelerator: str = "auto") -> SpeedSettings:
    """What ``trainer=auto`` runs with here. A CUDA GPU (unless ``accelerator`` is cpu): mixed precision, bf16 where
    the GPU has it natively (Ampere or newer: no loss scaling), else fp16 with loss scaling; cudnn.benchmark. A CPU
    with AVX-512 BF16 or AMX: bf16 autocast (steps 2.0x faster than fp32, accuracy within seed noise: RESULTS.md,
    "CPU options" 2026-11-28 12:34 and "bf16 against fp32" 2026-11-29). Another CPU: fp32 (bf16 would be
    emulated). channels_last everywhere: tensor cores' and oneDNN's native conv layout, same math."""
    if accelerator != "cpu" and torch.cuda.is_available():
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return SpeedSettings("bf16-mixed", True, True, "CUDA GPU with native bf16")
        return SpeedSettings("16-mixed", True, True, "CUDA GPU without native bf16: fp16 with loss scaling")
    flags = cpu_flags()
    if flags is None:
        return SpeedSettings("32-true", True, False, "CPU bf16 support unknown (no /proc/cpuinfo)")
    has = [flag for flag in CPU_BF16_FLAGS if flag in flags]
    if has:
        return SpeedSettings("bf16-mixed", True, False, f"CPU has {' and '.join(has)}")
    return SpeedSettings("32-true", True, False, f"CPU has no {' or '.join(CPU_BF16_FLAGS)}")


def thread_count(setting, omp: str | None = None, affinity: int | None = None, cgroup: str | None = None,
                 n_jobs: int = 1, cpus_per_task: int | None = None, launcher: str = "",
                 processes: int = 1) -> tuple[int, str]:
    """Torch's intra-op threads for this process, and why (pure: the machine is read by ``usable_threads``).

    ``setting``: ``speed.threads`` (an int >= 1 wins; null: work it out). Usable cores: the smallest of
    ``omp`` (OMP_NUM_THREADS), ``affinity`` (CPUs this process may run on) and ``cgroup`` (cgroup CPU limit as
    "quota period", v2 ``cpu.max`` style; "max" or a negative quota: no limit). Then shared among the sweep jobs that
    run at once: ``cpus_per_task`` (submitit) caps each job, else ``n_jobs`` (joblib's n_jobs; negative: cores + 1 +
    n_jobs jobs, so -1 is one per core) divides the cores, and so do the run's own training processes on this
    machine (``processes``: DDP's ``trainer.devices``; each used every core, 2 x 2 threads on 2 cores). Never below
    1."""
    if setting is not None:
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ValueError(f"speed.threads must be null (the usable cores, shared among parallel sweep jobs) or an "
                             f"integer >= 1, got {setting!r}")
        return setting, "speed.threads"
    limits = {}
    if affinity is not None and affinity >= 1:
        limits["CPU affinity"] = affinity
    try:
        omp_threads = int(str(omp).split(",")[0])  # "4,2": nested levels, the first is ours
        if omp_threads >= 1:
            limits[f"OMP_NUM_THREADS={omp}"] = omp_threads
    except ValueError:
        pass
    try:
        quota, period = str(cgroup).split()[:2]
        if quota != "max" and float(quota) > 0 and float(period) > 0:
            limits[f"cgroup CPU limit {float(quota) / float(period):g}"] = max(1, int(float(quota) // float(period)))
    except ValueError:
        pass
    if not limits:
        return 1, "no core count found"
    source = min(limits, key=limits.get)
    cores = limits[source]
    why = f"{cores} cores, {source}"
    if cpus_per_task:
        threads = min(cores, int(cpus_per_task))
        return threads, f"{why}; {launcher or 'launcher'} cpus_per_task {cpus_per_task}"
    if launcher == "submitit_local":  # its jobs share this machine, and no job is told how many there are
        why += ("; submitit_local runs the sweep's jobs at once: hydra.launcher.cpus_per_task=<cores per job> "
                "divides them")
    jobs = max(1, cores + 1 + n_jobs) if n_jobs < 0 else max(1, n_jobs)
    if launcher == "joblib" and source.startswith("OMP_NUM_THREADS"):  # joblib's workers get cores // n_jobs in it:
        jobs, why = 1, f"{why} (joblib's share per job)"  # already divided, not again
    shares = ([f"{jobs} parallel jobs ({launcher or 'launcher'} n_jobs={n_jobs})"] * (jobs > 1)
              + [f"{processes} training processes (trainer.devices)"] * (processes > 1))
    if not shares:
        return cores, why
    return max(1, cores // (jobs * max(processes, 1))), f"{why} / {' x '.join(shares)}"


def cgroup_cpu_limit() -> str | None:
    """This machine's cgroup CPU limit as "quota period" (v2 ``cpu.max``; v1 ``cfs_quota_us cfs_period_us``)."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            return f.read().strip()
    except OSError:
        pass
    for folder in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        try:
            with open(f"{folder}/cpu.cfs_quota_us") as q, open(f"{folder}/cpu.cfs_period_us") as p:
                return f"{q.read().strip()} {p.read().strip()}"
        except OSError:
            continue
    return None


def parallel_jobs() -> dict:
    """How this job shares the machine with the other jobs of its sweep, from Hydra's launcher config: joblib's
    n_jobs, submitit's cpus_per_task. (submitit_local starts every job at once and Hydra does not tell a job how
    many there are: without cpus_per_task its jobs are not divided.)"""
    if not is_multirun():
        return {}
    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        return {"n_jobs": int(launcher.get("n_jobs", -1)), "launcher": "joblib"}
    if "submitit" in target.lower():
        local = target.endswith("LocalLauncher")  # every job of the sweep at once, on this machine
        return {"cpus_per_task": launcher.get("cpus_per_task"), "launcher": "submitit_local" if local else "submitit"}
    return {}


def usable_threads(cfg: DictConfig) -> tuple[int, str]:
    """``thread_count`` on this machine: OMP_NUM_THREADS, CPU affinity, cgroup limit, the sweep's launcher and the
    run's DDP processes."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return thread_count((cfg.get("speed") or {}).get("threads"), os.environ.get("OMP_NUM_THREADS"), affinity,
                        cgroup_cpu_limit(), **parallel_jobs(), processes=devices_per_node(cfg.trainer))
