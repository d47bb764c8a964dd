# Two commands matter: `make demo` (setup + the quick reproduction of all five papers) and `make test`.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK ?= requirements/lock.txt
JOBS ?= 2

export PATH := $(abspath $(BIN)):$(PATH)
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export MPLBACKEND := Agg
export TF_CPP_MIN_LOG_LEVEL := 3
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1
export PYTHONDONTWRITEBYTECODE := 1

PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
FAST := -m "not slow and not mpi and not gpu"

.PHONY: help setup demo test check notebooks gpu-check reproduce bench lint format clean mutation

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install the pinned stack (idempotent)

$(STAMP): $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || \
	  { echo "setup: error: Python >= 3.10 required, found $$($(PYTHON) --version 2>&1)" >&2; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing $(LOCK) into $(VENV) (log: $(VENV)/pip.log)"
	@$(BIN)/python -m pip install -q --upgrade pip > $(VENV)/pip.log 2>&1 || true
	@$(BIN)/python -m pip install -r $(LOCK) >> $(VENV)/pip.log 2>&1 || \
	  { echo "setup: error: a requirement could not be installed: $$(grep -m1 -E '^ERROR' $(VENV)/pip.log)" >&2; exit 1; }
	@$(BIN)/python -m pip install --no-deps -e . >> $(VENV)/pip.log 2>&1 || \
	  { echo "setup: error: pip install -e . failed (see $(VENV)/pip.log)" >&2; exit 1; }
	@$(BIN)/python -m pip check >> $(VENV)/pip.log 2>&1 || \
	  { echo "setup: error: pip check found broken requirements (see $(VENV)/pip.log)" >&2; exit 1; }
	@touch $(STAMP)
	@echo "setup: done"

demo: setup  ## quick reproduction of all five papers -> results/demo/REPORT.md
	$(BIN)/python -m common.report

reproduce: setup  ## fuller small-scale reproductions -> results/reproduce/REPORT.md
	$(BIN)/python -m common.report --full

lint: setup  ## ruff
	$(BIN)/ruff check .

format: setup  ## ruff format + autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint  ## ruff, then the whole suite: fast, slow, mpi and notebooks (tests/common/test_notebooks.py)
	$(PYTEST) -n $(JOBS) --durations=15 tests

check: setup lint  ## ruff + the fast tests (no slow, mpi, gpu or notebooks), for iterating
	$(PYTEST) -n $(JOBS) $(FAST) tests

notebooks: setup  ## re-execute the notebooks (NB=path for one) and save them with outputs and figures (< 2 min each)
	@status=0; for nb in $(if $(NB),$(NB),notebooks/*.ipynb); do start=$$(date +%s); log=$(VENV)/nb-$$(basename $$nb .ipynb).log; \
	  if env -u MPLBACKEND $(BIN)/jupyter-execute --inplace --timeout=120 $$nb > $$log 2>&1; \
	  then echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	  else status=1; echo "$$nb: error (log: $$log): $$(grep -m1 -E '^[A-Za-z]*Error' $$log)" >&2; fi; \
	done; exit $$status

gpu-check: setup  ## GPU readiness (<= 8 min on one H100) -> results/gpu/REPORT.md; without CUDA a dry run
	$(BIN)/python -m common.gpu_check

bench: setup  ## every benchmark; prints ratio tables, writes results/bench/*.json
	@status=0; for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || status=1; done; exit $$status

mutation: setup  ## mutation testing (not part of test); MODULE=path for one module; scores -> tests/README.md
	$(BIN)/python tests/mutation/run.py $(if $(MODULE),--module $(MODULE)) --jobs $(if $(MUTATION_JOBS),$(MUTATION_JOBS),1)

.PHONY: arena arena-full
arena: setup  ## the arena's quick preset (<= 15 min on 2 cores) -> results/arena/quick/REPORT.md
	$(BIN)/python -m arena.run --preset quick --resume

arena-full: setup  ## the arena's full preset on $(JOBS) MPI ranks (hours; rerun to resume) -> results/arena/full/REPORT.md
	$(BIN)/mpirun -n $(JOBS) $(BIN)/python -m arena.targets --workloads cpu --only_missing --resume
	$(BIN)/mpirun -n $(JOBS) $(BIN)/python -m arena.run --preset full --resume

clean:  ## remove results and caches (keeps .venv and data/)
	rm -rf results .pytest_cache .ruff_cache
