# pspl-nb: two commands do everything on a fresh machine.
#   make reproduce [PROFILE=smoke|cpu|gpu|paper]   run every notebook, results under results/<profile>/
#   make test                                       the whole test suite, notebooks included
#   make test-fast                                  the edit-test loop: no notebook, browser or training subprocess

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
JOBS    ?= 2
# The profile: PROFILE given to make, else $PSPL_PROFILE (what README tells JupyterLab users to set), else cpu.
ifeq ($(origin PROFILE),undefined)
PROFILE := $(or $(PSPL_PROFILE),cpu)
endif
ifneq ($(PSPL_PROFILE),)
ifneq ($(PSPL_PROFILE),$(PROFILE))
$(warning *** PROFILE=$(PROFILE) (from the $(origin PROFILE)) is used, NOT PSPL_PROFILE=$(PSPL_PROFILE) from the environment ***)
endif
endif

.DEFAULT_GOAL := help
.PHONY: help env test test-fast test-browser reproduce executed rehearse lab data verify bench gpu-check wheels reference gallery clean clean-runs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The venv is built once; it is rebuilt only when a dependency file changes, or when its Python does not run
# (deleted, or too old: a venv left by a failed `make env PYTHON=<old python>` is replaced, not reused).
NEW_ENOUGH := -c 'import sys; sys.exit(sys.version_info < (3, 11))'
$(STAMP): pyproject.toml constraints.txt
	@if ! $(BIN)/python $(NEW_ENOUGH) 2>/dev/null; then \
	  if ! $(PYTHON) $(NEW_ENOUGH) 2>/dev/null; then \
	    echo "Python too old: $(PYTHON) is $$($(PYTHON) --version 2>&1 || echo missing), the kit needs Python 3.11 or newer; run make env PYTHON=python3.11 (or another 3.11+)" >&2; \
	    exit 1; \
	  fi; \
	  if [ -e $(VENV) ]; then echo "$(VENV) does not run Python 3.11+ (broken or made by an older Python): rebuilding it" >&2; rm -rf $(VENV); fi; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,slurm]'
	@touch $(STAMP)

env: $(STAMP)  ## create .venv with the pinned packages

test: $(STAMP)  ## run the whole test suite (notebooks in the smoke profile included)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

test-fast: $(STAMP)  ## the tests without notebooks, browser and training subprocesses (under 2 min on 2 cores)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -m "not notebook and not browser and not processes"

test-browser: $(STAMP)  ## notebook 02's sliders in JupyterLab and headless Chromium (needs /usr/bin/chromium)
	$(BIN)/python -m pytest tests/test_browser.py -p no:xdist -v

reproduce: $(STAMP)  ## execute every notebook in order; PROFILE=cpu by default (or PSPL_PROFILE); ONLY="03 05" runs some
	$(BIN)/python -m pspl_nb.reproduce --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

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
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,slurm,bench]"
	$(BIN)/python -m bench.run_all

# `make gpu-check` runs with the CUDA machine's own Python and torch (GPU_PYTHON), in a venv that sees them
# (--system-site-packages) and gets the kit's other imports from wheels/ when there is one (`make wheels`,
# docs/running_anywhere.md#a-cuda-machine-without-a-package-registry), else from the registry.
GPU_PYTHON ?= python3
GPU_VENV   := .venv-gpu
PY_VERSION ?= 3.11
PLATFORM   ?= manylinux_2_28_x86_64

gpu-check:  ## on one CUDA GPU: the GPU path's correctness and speed in <= 8 min -> results/gpu-check/ (DRY=1: CPU, toy sizes)
	@test -x $(GPU_VENV)/bin/python || $(GPU_PYTHON) -m venv --system-site-packages $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		$(if $(wildcard wheels/*.whl),--no-index --find-links wheels) -r bench/gpu_check_requirements.txt
	PYTHONPATH=$(CURDIR) $(GPU_VENV)/bin/python -m bench.gpu_check $(if $(DRY),--dry)

wheels: $(STAMP)  ## download gpu-check's imports (not torch) into wheels/ for PY_VERSION on PLATFORM, to carry offline
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --dest wheels --only-binary=:all: \
		--python-version $(PY_VERSION) --platform $(PLATFORM) -c constraints.txt -r bench/gpu_check_requirements.txt

REF := results/reference
reference: $(STAMP)  ## the committed reference grids: cpu (224 runs, ~3 h), cpu_long (112, ~2.5 h), Table 1 (30); resumable
	$(BIN)/python -m pspl_nb.experiments --profile cpu --grid reference --jobs 2 --reference-dir $(REF)/cpu
	$(BIN)/python -m pspl_nb.experiments --profile cpu_long --grid reference --jobs 2 --reference-dir $(REF)/cpu_long
	$(BIN)/python -m pspl_nb.experiments --profile cpu --grid table1 --seeds 3 --jobs 2 --reference-dir $(REF)/cpu

GALLERY := overview_pipeline fig3_left fig3_right explorer_step1 adam_loss_scale fig4_ablation primary_claims \
           effective_step lr_sweep_reference attention_stats race_paper_settings race_seeds critical_curves fig5_visual

gallery:  ## copy README's figures from results/$(PROFILE)/figures (after make reproduce) to docs/gallery
	@mkdir -p docs/gallery
	@for f in $(GALLERY); do cp results/$(PROFILE)/figures/$$f.png docs/gallery/$$f.png; done
	@for f in 02_pspl_explained 04_race; do test ! -f results/browser/$$f.png || cp results/browser/$$f.png docs/gallery/browser_$$f.png; done
	@echo "docs/gallery updated from results/$(PROFILE) and results/browser"

clean:  ## remove the venvs and the CPU profiles' notebook outputs; keeps data/, results/reference and every trained run
	rm -rf $(VENV) $(GPU_VENV) .pytest_cache results/smoke results/cpu results/cpu_long
	@echo "kept every trained run (results/runs, results/rehearse, results/gpu, results/paper): make clean-runs deletes them"

clean-runs:  ## delete every trained run: says how many and how many hours of training, then asks (FORCE=1: no question)
	@$(PYTHON) -m pspl_nb.housekeeping clean-runs --results "$${PSPL_RESULTS:-results}" $(if $(FORCE),--force)
