# The two commands of the README: `make run` (default pipeline) and `make test` (the test suite).
PYTHON ?= python3
VENV   := .venv
CORES  ?= 2
STAMP  := $(VENV)/.installed
# The Python code that ruff formats and lints (mypy's files are set in pyproject.toml).
PYTHON_PATHS := src tests benchmarks workflow/scripts

.PHONY: run test report lint clean-results

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" snakemake --cores $(CORES)

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
