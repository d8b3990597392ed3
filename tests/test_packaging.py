"""What a user's environment gets: every third-party package the project imports is declared in pyproject.toml,
and importing the project's plotting modules leaves a notebook's matplotlib backend alone."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("callbacks", "datamodules", "lightning_modules")


def _imported_top_modules(files) -> set[str]:
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + (project["optional-dependencies"].get(extra, []) if extra else [])
    return {re.split(r"[<>=!\[ ;]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def test_every_imported_package_is_declared():
    files = [ROOT / "train.py"] + [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")]
    local = set(SOURCE_DIRS) | {"train", "benchmarks"}
    distributions = packages_distributions()
    missing = {}
    for module in _imported_top_modules(files) - local - set(sys.stdlib_module_names) - {"__future__"}:
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & _declared():
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"


# One fresh interpreter for both import checks below (each started its own: ~8 s of imports apiece). With a backend
# chosen first, as a notebook would, it prints the matplotlib modules that importing the figure helpers and their
# users pulled in, then imports every other plotting module and train.py, draws with them, and prints the backend
# left in place.
IMPORTS = """
import json, sys
import matplotlib
matplotlib.use("svg")
import pytorch_lightning, torch
before = set(sys.modules)
import callbacks.figures, callbacks.schedules.lr_schedule, callbacks.range_test.report
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith("matplotlib"))))
import callbacks.sweeps.plot, callbacks.sweeps.summary, lightning_modules.confusion
import train
from pathlib import Path
import tempfile
from callbacks.sweeps.plot import Point, heatmap
from lightning_modules.confusion import confusion_figure
fig = confusion_figure(torch.tensor([[3, 1], [0, 4]]), ["a", "b"], "t")
with tempfile.TemporaryDirectory() as d:
    fig.savefig(Path(d) / "c.png")
    heatmap([Point((0.1, 1e-4), 0.5, "completed"), Point((0.2, 1e-3), 0.6, "completed")], ("lr", "wd"), "val/acc",
            Path(d) / "h.png")
    assert (Path(d) / "c.png").stat().st_size > 0 and (Path(d) / "h.png").stat().st_size > 0
print(matplotlib.get_backend())
"""


@pytest.fixture(scope="module")
def imports() -> list[str]:
    """The lines IMPORTS printed: [matplotlib modules imported as JSON, the backend at the end]."""
    out = subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def test_importing_the_figure_helpers_imports_no_matplotlib(imports):
    """Importing the figure helpers and their users imports no matplotlib module of its own (pyplot least of all)
    and chooses no backend: both wait for the first figure."""
    assert json.loads(imports[0]) == []


def test_importing_the_plotting_modules_keeps_the_backend(imports):
    assert imports[-1] == "svg"


def test_every_package_folder_is_listed_for_a_plain_install():
    """pyproject.toml lists packages explicitly: a new sub-package left out would be missing from `pip install .`."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {str(p.parent.relative_to(ROOT)).replace("/", ".") for d in SOURCE_DIRS
               for p in (ROOT / d).rglob("__init__.py")}
    assert folders and folders <= listed, f"not in [tool.setuptools] packages: {sorted(folders - listed)}"
