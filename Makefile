# nbtoolkit: two commands do everything on a fresh machine: `make tutorials` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Exact versions of everything `make setup` installs (Python 3.11, Linux x86_64, CPU torch), compiled
# by `make lock` from pyproject's ranges; the package itself keeps its ranges for its users.
LOCK         := requirements/lock.txt
NO_DEPS_LOCK := requirements/no-deps.txt
BENCH_LOCK   := requirements/bench.txt
# Where the CPU wheel of torch lies (requirements/torch-cpu.txt); a bare `torch` from PyPI is a
# multi-GB CUDA build. Elsewhere: make setup TORCH_WHEELS=https://download.pytorch.org/whl/cpu/torch
TORCH_WHEELS ?= /opt/wheels
UV_VERSION   := $(shell sed -n 's/^uv==//p' $(LOCK))
UV           := $(BIN)/uv
INSTALL      := $(UV) pip install -q --python $(BIN)/python --find-links $(TORCH_WHEELS)
COMPILE      := $(UV) pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
                --find-links $(TORCH_WHEELS) --override requirements/torch-cpu.txt --custom-compile-command "make lock"
STAMP  := $(VENV)/.nbtoolkit-setup
# Unit tests draw off-screen; notebooks use the inline backend so executed copies keep their figures.
TEST_ENV     := MPLBACKEND=Agg
NOTEBOOK_ENV := MPLBACKEND=module://matplotlib_inline.backend_inline
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE ?= 1

.PHONY: setup lock tutorials exercises test bands test-latest lab bench docs clean

setup: $(STAMP)

$(UV): $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"

$(STAMP): $(UV) $(LOCK) $(NO_DEPS_LOCK) pyproject.toml Makefile
	$(INSTALL) -r $(LOCK)
	$(INSTALL) --no-deps -r $(NO_DEPS_LOCK)
	$(INSTALL) --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Regenerate the locks from pyproject's ranges (the newest versions that satisfy them); `make setup`
# then installs them.
lock: $(UV)
	$(COMPILE) pyproject.toml requirements/tools.in --extra dev --extra embedded --extra docs -o $(LOCK)
	$(COMPILE) --no-deps requirements/no-deps.in -o $(NO_DEPS_LOCK)
	$(COMPILE) pyproject.toml --extra bench --constraint $(LOCK) -o $(BENCH_LOCK)

# `make tutorials PRESET=paper MODEL=gpt2-xl`: papermill parameters of every notebook (nbtoolkit/tutorials/presets.py)
tutorials: setup
	$(NOTEBOOK_ENV) $(BIN)/python -m nbtoolkit.cli.tutorials notebooks build \
		$(if $(PRESET),--preset "$(PRESET)") $(if $(MODEL),--model "$(MODEL)")

# Student notebooks (solutions removed by nbgrader) in build/exercises/, and an nbgrader course
# in build/classroom/ for autograding: notebooks/README.md.
exercises: setup
	$(BIN)/python -m nbtoolkit.cli.exercises notebooks build

# The unit tests, two workers; every notebook from the installed wheel on a stand-in Colab with tiny
# hub models (tests/test_colab_hub.py, its own step); every notebook at its CPU preset, two at a
# time, each checking its headline numbers against their result bands (build/index.html); last, the
# documentation site from those executed notebooks, its links and a reader's search in Chromium.
test: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 tests
	$(TEST_ENV) $(BIN)/python -m pytest -q -m colab_hub --durations=0 tests/test_colab_hub.py
	$(NOTEBOOK_ENV) $(BIN)/python -m nbtoolkit.cli.tutorials notebooks build --jobs 2
	$(MAKE) docs
	$(TEST_ENV) $(BIN)/python -m pytest -q -m docs_site tests/test_docs.py

# Measure the result bands again (nbtoolkit/tutorials/bands.json) after a change that moves a
# headline number on purpose: every notebook at SEED = 0 as make test runs it, and at SEED = 1 on two threads.
bands: setup
	$(NOTEBOOK_ENV) $(BIN)/python -m nbtoolkit.cli.bands notebooks build/bands $(if $(ONLY),--only $(ONLY))

# The newest versions pyproject allows, in a virtualenv of their own (.venv-latest): the unit tests
# and the Colab + hub pass. Run it before a release and whenever a dependency has a new release:
# what it breaks, users installing today meet. torch stays the CPU wheel ($(TORCH_LATEST)).
LATEST := .venv-latest
TORCH_LATEST ?= torch==2.13.0+cpu
test-latest: setup
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	echo "$(TORCH_LATEST)" > $(LATEST)/torch.txt
	$(UV) pip install -q --python $(LATEST)/bin/python --find-links $(TORCH_WHEELS) --upgrade \
		--override $(LATEST)/torch.txt -r requirements/tools.in -e ".[dev,embedded,docs]"
	$(UV) pip install -q --python $(LATEST)/bin/python --upgrade --no-deps -r requirements/no-deps.in
	@echo "versions that differ from the lock (< lock, > latest):"
	@$(UV) pip freeze -q --python $(LATEST)/bin/python --exclude-editable | tr A-Z_ a-z- | sort > $(LATEST)/versions.txt
	@grep -h '^[a-z0-9]' $(LOCK) $(NO_DEPS_LOCK) | sort | diff - $(LATEST)/versions.txt | grep '^[<>]' || true
	$(TEST_ENV) $(LATEST)/bin/python -m pytest -q -p no:cacheprovider -n 2 tests
	$(TEST_ENV) $(LATEST)/bin/python -m pytest -q -p no:cacheprovider -m colab_hub tests/test_colab_hub.py

# The documentation site (docs/) in build/docs/: the tutorials as executed into build/notebooks/
# (never run again), the API reference from the docstrings; warnings are errors, nothing is fetched.
docs: setup
	$(TEST_ENV) $(BIN)/python -m sphinx -b html -W --keep-going -q -j 1 docs build/docs

lab: setup
	$(BIN)/jupyter lab notebooks

# The peers' rows (pyvene, nnsight, TransformerLens) need the optional extra: $(INSTALL) -r $(BENCH_LOCK);
# without it they are skipped with a message. Writes benchmarks/RESULTS.md whole: about 10 minutes,
# or everything on both weight states with FULL=1 (about 50 minutes), then every library's user code
# (benchmarks/user_code) run and checked equal to nbtoolkit's.
bench: setup
	BENCH_FULL=$(FULL) $(TEST_ENV) $(BIN)/python benchmarks/run.py
	$(if $(filter-out 0,$(FULL)),$(TEST_ENV) $(BIN)/python benchmarks/count_lines.py --run)

clean:
	rm -rf build
