"""The speed benchmarks (issue 11) run: each script's --quick mode (all five in one subprocess,
tests/quick_benchmarks.py, so torch is imported once) prints its table with positive, finite numbers; --record
appends a dated entry to the file given by --results (never the real RESULTS.md)."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED_DATA

BENCH = ROOT / "benchmarks"


def run_script(name: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


# Every speed script's --quick command line, run once for the module in ONE Python process
# (tests/quick_benchmarks.py: each script as __main__ with its own argv; torch imported once, not five times).
QUICK = {
    "overhead": ["overhead.py", "--quick", "--in-process"],
    "cpu_options": ["cpu_options.py", "--quick"],
    "data_throughput": ["data_throughput.py", "--quick", "--in-process"],
    "cifar10_fast": ["cifar10_fast.py", "--quick", "--in-process"],
    "reference_loop": ["reference_loop.py", "--quick", "--model", "small", "--record", "--results", "RESULTS"],
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """{name: {"returncode", "stdout", "stderr"}} of the QUICK command lines, plus the albumentations check."""
    tmp = tmp_path_factory.mktemp("quick_benchmarks")
    results = tmp / "RESULTS.md"
    results.write_text("# Benchmark results\n\nearlier entry\n")
    real = (BENCH / "RESULTS.md").read_text()
    commands = [[str(results) if a == "RESULTS" else a for a in argv] for argv in QUICK.values()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "quick_benchmarks.py"), str(tmp / "out.json"),
                           json.dumps(commands)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((tmp / "out.json").read_text())
    runs = dict(zip(QUICK, report["runs"]))
    runs["albumentations_imported"] = report["albumentations_imported"]
    runs["results_file"] = results
    runs["real_results_unchanged"] = (BENCH / "RESULTS.md").read_text() == real
    return runs


def quick_stdout(quick, name: str) -> str:
    run = quick[name]
    assert run["returncode"] == 0, run["stdout"][-2000:] + run["stderr"][-4000:]
    return run["stdout"]


def table_rows(text: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header begins with ``header_start``, as dicts."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"| {header_start} |")]
    assert starts, f"no table starting with {header_start!r} in:\n{text}"
    header = [c.strip() for c in lines[starts[0]].strip("|").split("|")]
    assert set(lines[starts[0] + 1].replace("|", "").split()) == {"---"}
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    assert rows, f"the {header_start!r} table is empty"
    return rows


def positive(value: str) -> float:
    number = float(re.match(r"[-+0-9.eE]+", value).group(0))
    assert math.isfinite(number) and number > 0, value
    return number


def test_overhead_quick(quick):
    out = quick_stdout(quick, "overhead")
    per_round = table_rows(out, "round")
    summary = table_rows(out, "network")
    assert [r["network"] for r in summary] == ["small"] and len(per_round) == 1
    for row in per_round:
        ratio = positive(row["ratio"])
        assert ratio == pytest.approx(positive(row["train.py s/step"]) / positive(row["reference s/step"]), rel=1e-2)
    assert positive(summary[0]["ratio train.py/reference (median)"]) > 0
    assert summary[0]["<= 1.03"] in ("yes", "no")


def test_cpu_options_quick(quick):
    rows = table_rows(quick_stdout(quick, "cpu_options"), "option")
    names = [r["option"] for r in rows]
    assert names[0] == "fp32" and {"channels_last", "bf16", "channels_last+bf16", "cpu_fast"} <= set(names)
    assert not any("compile" in n for n in names)  # left out of --quick (minutes of compilation)
    for row in rows:
        positive(row["s/step (median)"])
        positive(row["speed-up vs fp32 (median)"])


def test_data_throughput_quick(quick):
    rows = table_rows(quick_stdout(quick, "data_throughput"), "path")
    paths = [r["path"] for r in rows]
    assert paths.count("batched") == 5 and "cache build" in paths and "epoch wait" in paths
    if "albumentations" in paths:
        assert [r["setting"] for r in rows if r["path"] == "albumentations"] == ["0 workers", "1 workers"]
    for row in rows:
        if row["path"] == "epoch wait":
            share = float(row["images/s (or share)"].split("%")[0])
            assert 0 < share < 100
        else:
            positive(row["images/s (or share)"])


def test_cifar10_fast_quick(quick):
    rows = table_rows(quick_stdout(quick, "cifar10_fast"), "recipe")
    assert rows[0]["recipe"] == "cifar10_fast" and rows[0]["seeds"] == "1"
    assert 0 <= float(rows[0]["test acc (TTA) mean"]) <= 1
    assert 0 <= float(rows[0]["no TTA mean"]) <= 1  # test_no_tta/acc, read from the run's metrics.csv
    positive(rows[0]["training images/s"])
    assert positive(rows[0]["total s (mean)"]) > positive(rows[0]["training s (mean)"])


def test_reference_loop_quick_and_record(quick):
    """--quick prints the table; --record appends it, dated, with machine and command, to --results."""
    results = quick["results_file"]  # written before the run: "# Benchmark results\n\nearlier entry\n"
    out = quick_stdout(quick, "reference_loop")
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nearlier entry\n")  # appended, not rewritten
    entry = text.split("earlier entry\n", 1)[1]
    assert re.search(r"^## Reference loop .*\(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)$", entry, re.M)
    assert "torch " in entry and "lightning " in entry and "cores " in entry and "cpu " in entry
    assert "`python benchmarks/reference_loop.py --quick --model small --record --results" in entry
    row = table_rows(out, "loop")[0]
    assert row["network"] == "small" and row["steps"] == "3"
    assert positive(row["images/s"]) == pytest.approx(64 / positive(row["s/step (median)"]), rel=1e-2)
    assert "| reference | small | 64 |" in entry and row["images/s"] in entry  # the printed table, as printed
    assert quick["real_results_unchanged"]


def test_every_speed_script_has_help():
    sys.path.insert(0, str(BENCH))
    from runs_table import run_as_main  # each script as __main__ in this process: no interpreter start-up each

    for name in ("reference_loop.py", "overhead.py", "cpu_options.py", "data_throughput.py", "cifar10_fast.py"):
        code, out, err = run_as_main(BENCH / name, ["--help"])
        assert code == 0, err[-2000:]
        assert "--quick" in out and "--record" in out and "--results" in out, name
    gpu = subprocess.run(["bash", str(BENCH / "gpu.sh"), "--help"], capture_output=True, text=True)
    assert gpu.returncode == 0 and "--compile" in gpu.stdout and "--quick" in gpu.stdout
    bad = subprocess.run(["bash", str(BENCH / "gpu.sh"), "--no-such-option"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option" in bad.stderr


def test_batched_data_path_does_not_import_albumentations(quick):
    # checked in the quick fixture's process before any script ran: import datamodules.augment, .cifar10,
    # .synthetic, .tensor_images, then look for albumentations in sys.modules
    assert quick["albumentations_imported"] is False


def test_peer_speed_quick_ratio_flops_and_record(tmp_path):
    """benchmarks/peer_speed.py --quick (issue 21): one CSV row per pair and side; the ratio in the CSV and the
    table is project / peer of those rows' s/step; FLOP/s = FLOPs / s/step, positive; both conv ceilings > 0; both
    sides count the same FLOPs (the same network); --record appends the table to --results."""
    if not (ROOT.parent / "shared" / "peers" / "airbench94_cpu.py").exists() \
            or not (SHARED_DATA / "cifar10-jpeg.npz").exists():
        pytest.skip("../shared/peers or the offline CIFAR-10 copy is absent")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    out = run_script("peer_speed.py", "--quick", "--in-process", "--out", str(tmp_path), "--record", "--results",
                     str(results), timeout=400).stdout
    if out.startswith("SKIPPED"):
        pytest.skip(out.strip())
    rows = list(csv.DictReader(open(tmp_path / "peer_speed.csv")))
    pairs = ("fp32_cl", "bf16_cl")
    assert sorted((r["pair"], r["side"]) for r in rows) == sorted((p, s) for p in pairs for s in ("project", "peer"))
    summary = {r["pair"]: r for r in table_rows(out, "pair")}
    for pair in pairs:
        side = {r["side"]: r for r in rows if r["pair"] == pair}
        ratio = positive(side["project"]["s_per_step"]) / positive(side["peer"]["s_per_step"])
        assert float(side["project"]["ratio"]) == float(side["peer"]["ratio"]) == pytest.approx(ratio)
        assert float(summary[pair]["ratio_median"]) == pytest.approx(ratio, rel=1e-3)
        assert side["project"]["flops_per_step"] == side["peer"]["flops_per_step"]
        for r in side.values():
            assert positive(r["flop_s"]) == pytest.approx(float(r["flops_per_step"]) / float(r["s_per_step"]))
            assert positive(r["ceiling_fp32_flop_s"]) > 0 and positive(r["ceiling_bf16_flop_s"]) > 0
            assert r["batch"] == "4" and r["threads"] == "1" and r["date"] and r["torch"]
    entry = results.read_text()
    assert "## cifar10_fast step against airbench94's own loop" in entry and "| fp32_cl | fp32 |" in entry


def test_peer_accuracy_summary_and_commands(tmp_path):
    """benchmarks/peer_accuracy.py: mean, standard error and difference against statistics' own, the verdict's
    two-standard-error rule, and equal precision/layout on both sides."""
    import math
    import statistics

    from benchmarks import peer_accuracy as pa

    project, peer = [0.905, 0.906, 0.908], [0.906, 0.907, 0.909]
    rows = [{"seed": s, "side": side, "precision": "fp32", "tta_acc": acc, "acc": acc - 0.01}
            for side, accs in (("project", project), ("peer", peer)) for s, acc in enumerate(accs)]
    line = pa.summary(rows).splitlines()[4]
    se = math.hypot(*(statistics.stdev([100 * a for a in accs]) / math.sqrt(3) for accs in (project, peer)))
    assert f"| +0.10 | {se:.2f} |" in line and line.endswith("| no measurable difference |")
    assert "| 90.63 | 0.30 | 0.09 |" in line  # project mean, spread, s.e.
    far = [{**r, "tta_acc": r["tta_acc"] + (0.02 if r["side"] == "peer" else 0)} for r in rows]
    assert pa.summary(far).splitlines()[4].endswith("| the peer is better |")
    assert pa.summary(rows[:1] + rows[3:4]).splitlines()[4].endswith("| needs 2+ seeds |")
    for precision, (project_overrides, peer_flags) in pa.PRECISIONS.items():
        cmd = pa.peer_command(tmp_path, 3, precision)
        assert cmd[-len(peer_flags):] == peer_flags and "--channels-last" in cmd and cmd[cmd.index("--seed") + 1] == "3"
        from conftest import compose_config
        cfg = compose_config(["experiment=cifar10_fast", *project_overrides])
        assert ("bf16" in str(cfg.trainer.precision)) == (precision == "bf16") and cfg.speed.channels_last
