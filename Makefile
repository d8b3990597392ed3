# make train / make test bootstrap a virtual environment in .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

.PHONY: install train test smoke bench-fast
install: $(STAMP)

train: $(STAMP)  ## the default training run; extra Hydra overrides via ARGS="experiment=cifar10_resnet9 ..."
	$(BIN)/python train.py $(ARGS)

smoke: $(STAMP)
	$(BIN)/python train.py experiment=smoke $(ARGS)

test: $(STAMP)  ## two pytest-xdist workers, one torch thread each; a file's tests (and its shared runs) stay together
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(ARGS)

bench-fast: $(STAMP)  ## cifar10_fast on the offline CIFAR-10 copy (../shared/data), see benchmarks/RESULTS.md
	$(BIN)/python benchmarks/cifar10_fast.py $(ARGS)
