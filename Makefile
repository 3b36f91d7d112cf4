# Two entry points (README): `make report` and `make test`. Both set up the venv first;
# set-up is skipped when pyproject.toml and requirements.lock have not changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: setup run report test bench clean slurm-profile

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

report: run
	$(BIN)/snakemake --cores $(CORES) --report results/report.zip
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synthetic.py
	$(BIN)/python benchmarks/bench_coactivation.py
	$(BIN)/python benchmarks/bench_capture.py
	$(BIN)/python benchmarks/bench_placement.py
	$(BIN)/python benchmarks/bench_workflow.py
	$(BIN)/python benchmarks/bench_kernels.py
	$(BIN)/python benchmarks/bench_routing.py
	$(BIN)/python benchmarks/bench_dynamic.py

# `snakemake --profile slurm` finds profiles in the user's config directory, not in profiles/: install ours there
# once (kept if a profile named slurm exists, e.g. the site's own).
slurm-profile: $(STAMP)
	$(BIN)/python tools/install-slurm-profile

clean:
	rm -rf results logs .snakemake
