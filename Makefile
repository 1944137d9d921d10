# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv, install a CPU build of torch (no multi-GB CUDA download on a machine
# without a GPU) and the project in editable mode, then run.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
# GPU users: `make install TORCH_INDEX=https://download.pytorch.org/whl/cu128`
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install run test docker-image

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	@# Try PyTorch's own index (the CPU build by default); where it is unreachable, fall back
	@# to the configured package index. Fail fast: --retries 0.
	$(PIP) install -q --retries 0 --timeout 15 --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)" \
	  || $(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Each `make run` starts a new run through the headless launcher (detached torchrun, listed by
# `olmo-tui runs`, watched in the app); `olmo-tui relaunch RUN --resume` continues one from its
# latest checkpoint. Runs go to $OLMO_TUI_RUNS_DIR, here ./runs.
OLMO_TUI_RUNS_DIR ?= $(CURDIR)/runs
export OLMO_TUI_RUNS_DIR

run: install
	$(VENV)/bin/olmo-tui --preset tiny-cpu

test: install
	$(VENV)/bin/pytest

# The Beaker image (Dockerfile): CUDA base, CUDA torch, this project. Build args pick the
# versions; push with `beaker image create --name olmo-tui $(DOCKER_TAG)` (README: Beaker image).
CUDA_VERSION ?= 12.8.1
TORCH_CUDA ?= cu128
DOCKER_TAG ?= olmo-tui:latest

docker-image:
	docker build --build-arg CUDA_VERSION=$(CUDA_VERSION) \
	  --build-arg TORCH_VERSION=$(TORCH_VERSION) --build-arg TORCH_CUDA=$(TORCH_CUDA) \
	  -t $(DOCKER_TAG) .
