# The two set-up commands of the README: `make run` and `make test`.
# Everything is installed into .venv by this file; nothing is installed by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE_ARGS ?=

.PHONY: install run demo test lint format clean

$(BIN)/codyn: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: it takes the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# Every extra (serve, train, aws, pipeline, slurm; pyproject.toml) and the test tools.
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(BIN)/codyn

install: $(BIN)/codyn

# Whole pipeline on the embedded default config (config.yaml): offline, CPU, real published
# answers replayed through our own scoring (results/default/).
run: install
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores 1 --report results/default/report.html

# The simulated five-task-kind demo (config/demo.yaml, results/demo/).
demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores 1 --configfile config/demo.yaml --report results/demo/report.html

# Lint (ruff, snakefmt, snakemake --lint) and the whole test suite.
test: install
	$(BIN)/ruff check codyn tests scripts benchmarks
	$(BIN)/ruff format --check codyn tests scripts benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

format: install
	$(BIN)/ruff format codyn tests scripts benchmarks
	$(BIN)/ruff check --fix codyn tests scripts benchmarks
	$(BIN)/snakefmt Snakefile rules

clean:
	rm -rf data results logs .snakemake
