# pspl-nb: two commands do everything on a fresh machine.
#   make reproduce [PROFILE=smoke|cpu|gpu|paper]   run every notebook, results under results/<profile>/
#   make test                                       the whole test suite, notebooks included

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= cpu
JOBS    ?= 2

.DEFAULT_GOAL := help
.PHONY: help env test test-browser reproduce lab data bench reference gallery clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The venv is built once; it is rebuilt only when a dependency file changes.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

env: $(STAMP)  ## create .venv with the pinned packages

test: $(STAMP)  ## run the whole test suite (notebooks in the smoke profile included)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

test-browser: $(STAMP)  ## notebook 02's sliders in JupyterLab and headless Chromium (needs /usr/bin/chromium)
	$(BIN)/python -m pytest tests/test_browser.py -p no:xdist -v

reproduce: $(STAMP)  ## execute every notebook in order; PROFILE=cpu by default
	$(BIN)/python -m pspl_nb.reproduce --profile $(PROFILE)

lab: $(STAMP)  ## open JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

data: $(STAMP)  ## download DIV2K and the benchmarks (needs a network)
	$(BIN)/python -m pspl_nb.data fetch all

bench: $(STAMP)  ## run the benchmarks in bench/
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python bench/run_all.py

reference: $(STAMP)  ## after make reproduce: commit-ready copy of its tables in results/reference/$(PROFILE)
	$(BIN)/python -m pspl_nb.reproduce --profile $(PROFILE) --snapshot-reference

GALLERY := overview_pipeline fig3_left fig3_right explorer_step1 fig4_ablation attention_stats critical_curves fig5_visual

gallery:  ## copy README's figures from results/$(PROFILE)/figures (after make reproduce) to docs/gallery
	@mkdir -p docs/gallery
	@for f in $(GALLERY); do cp results/$(PROFILE)/figures/$$f.png docs/gallery/$$f.png; done
	@echo "docs/gallery updated from results/$(PROFILE)"

clean:  ## remove the venv and generated results (keeps data/ downloads)
	rm -rf $(VENV) results/smoke results/cpu results/runs .pytest_cache
