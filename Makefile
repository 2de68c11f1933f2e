# The commands of the README: `make run` (default pipeline), `make test` (the test suite),
# `make resume` (finish an interrupted run), `make tiny` (the tiny configuration, alone, in tiny-run/).
PYTHON ?= python3
VENV   := .venv
CORES  ?= 2
STAMP  := $(VENV)/.installed
TINY_DIR ?= tiny-run
# The Python code that ruff formats and lints (mypy's files are set in pyproject.toml).
PYTHON_PATHS := src tests benchmarks workflow/scripts examples

.PHONY: run resume tiny test report lint clean-results

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES)

# After a crash or kill -9: unlock a stale lock (only if no Snakemake runs here), remove the killed
# jobs' temporary files and re-run the incomplete jobs; finished outputs are kept.
resume: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" modelkin resume --cores $(CORES)

# The tiny configuration of the tests on its own (no merge with config.yaml), in $(TINY_DIR)/.
tiny: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" modelkin check-config tests/config/tiny.yaml
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES) --configfile tests/config/tiny.yaml --directory $(TINY_DIR)

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m pytest

report: run
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES) --report results/report.html

lint: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ruff format --check $(PYTHON_PATHS)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ruff check $(PYTHON_PATHS)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakefmt --check Snakefile workflow/
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --lint

clean-results:
	rm -rf results/* .snakemake
