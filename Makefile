# The two commands a fresh machine needs: `make test` and `make bench`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned to the releases this project's machines install from local disk;
# override TORCH_PKGS to use another build (e.g. TORCH_PKGS="torch torchvision" for the newest).
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install test test-fast bench gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH_PKGS)
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest

# the fast part (seconds): every test not marked slow
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python -m benchmarks.vtab --suite smoke

# a machine with one CUDA GPU, no network needed once installed: results/gpu-check/report.md
gpu-check: install
	$(BIN)/python -m benchmarks.gpu_check

clean:
	rm -rf $(VENV) build *.egg-info
