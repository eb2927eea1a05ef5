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
.PHONY: help env test test-browser reproduce executed rehearse lab data verify bench reference gallery clean

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

executed: $(STAMP)  ## the executed cpu-profile notebooks README links, into notebooks/executed (~25 min, loads finished runs)
	$(BIN)/python -m pspl_nb.executed --profile cpu

rehearse: $(STAMP)  ## the gpu path end to end on an offline DIV2K stand-in, in minutes; projects the gpu/paper times
	$(BIN)/python -m pspl_nb.rehearse

lab: $(STAMP)  ## open JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

data: $(STAMP)  ## download DIV2K and the benchmarks (needs a network; resumes, tries mirrors)
	$(BIN)/python -m pspl_nb.data fetch all

verify: $(STAMP)  ## check every data set on disk (decodes, counts, LR sizes)
	$(BIN)/python -m pspl_nb.data verify

bench: $(STAMP)  ## run the benchmarks in bench/
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python -m bench.run_all

REF := results/reference/cpu
reference: $(STAMP)  ## the committed reference grids: cpu 8 seeds, cpu_long 5, Table 1 3 (about 4 h on 2 cores)
	$(BIN)/python -m pspl_nb.experiments --profile cpu --grid reference --seeds 8 --jobs 2 --reference-dir $(REF)
	$(BIN)/python -m pspl_nb.experiments --profile cpu_long --grid long --seeds 5 --jobs 2 --reference-dir $(REF)
	$(BIN)/python -m pspl_nb.experiments --profile cpu --grid table1 --seeds 3 --jobs 2 --reference-dir $(REF)

GALLERY := overview_pipeline fig3_left fig3_right explorer_step1 adam_loss_scale fig4_ablation threshold_sensitivity_reference \
           design_effects_reference lr_sweep_reference attention_stats race_paper_settings race_seeds critical_curves fig5_visual

gallery:  ## copy README's figures from results/$(PROFILE)/figures (after make reproduce) to docs/gallery
	@mkdir -p docs/gallery
	@for f in $(GALLERY); do cp results/$(PROFILE)/figures/$$f.png docs/gallery/$$f.png; done
	@for f in 02_pspl_explained 04_race; do test ! -f results/browser/$$f.png || cp results/browser/$$f.png docs/gallery/browser_$$f.png; done
	@echo "docs/gallery updated from results/$(PROFILE) and results/browser"

clean:  ## remove the venv and generated results (keeps data/ downloads and results/reference)
	rm -rf $(VENV) results/smoke results/cpu results/cpu_long results/gpu results/paper results/runs results/rehearse .pytest_cache
