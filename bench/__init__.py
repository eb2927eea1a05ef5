"""Speed and memory benchmarks of the kit, one module per question, each runnable from the repository root:

    python -m bench.run_all            # every CPU section -> bench/REPORT.md (what `make bench` runs)
    python -m bench.ssim_peers         # SSIM map against peer libraries
    python -m bench.train_step         # PSPL's overhead per training step
    python -m bench.loader             # data loader against the model
    python -m bench.cost_growth        # step time and memory against patch and batch
    python -m bench.model_step         # one training step of every model, to size CPU experiments
    python -m bench.whole_process      # wall time and memory of `make reproduce PROFILE=smoke` and `make test`
    bash bench/gpu.sh [DIR]            # the GPU-relevant sections on a CUDA machine, as JSON for run_all

``bench`` is not installed with the kit (pyproject installs ``pspl_nb`` only): run it with the repository
root as the working directory (``python -m`` then finds it), or put the root on ``PYTHONPATH``.
"""
