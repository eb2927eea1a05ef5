#!/usr/bin/env bash
# GPU checks of the training engine itself (not the bench modules), for a borrowed CUDA machine.
# Usage, from the repository root: bash bench/gpu_runs.sh OUT_DIR  (GRID=0 skips part 2)
# 1. one 1000-iteration epoch of the `gpu` profile's EDSR-baseline x2 (batch 16, LR 48x48) with PSPL and with
#    L1, fp32 and bf16 + channels_last. DIV2K cannot be fetched there, so the embedded images stand in: same
#    model, batch, patch and iterations; only the pixels differ.
# 2. notebook 07's grid of the `cpu` profile (tiny models, embedded data) on the GPU.
set -u
out=${1:?output folder}
mkdir -p "$out"
export PSPL_RESULTS=/tmp/pspl_results CI=1 PYTHONUNBUFFERED=1
embedded="--set dataset=embedded --set val_set=embedded_valid --set eval_sets=embedded_valid --set epochs=1"
for arm in on off; do
  for prec in bf16 fp32; do  # amp and channels_last do not change the run id: one results folder each
    [ $prec = bf16 ] && flags="--set amp=on --set channels_last=on" || flags="--set amp=off --set channels_last=off"
    python3 -m pspl_nb.train --profile gpu --model edsr_baseline --pspl $arm $embedded $flags \
      --results /tmp/pspl_results/$prec | tee -a "$out/gpu_epoch.txt"
  done
done
python3 - "$out" <<'PY'
import glob, json, sys, pandas as pd
rows = []
for run in sorted(glob.glob("/tmp/pspl_results/*/runs/*")):
    c, h = json.load(open(f"{run}/config.json")), pd.read_csv(f"{run}/history.csv")
    rows.append(dict(arm="pspl" if c["weighting"] == "pspl" else "l1", amp=c["amp"], channels_last=c["channels_last"],
                     epoch_s=h.wall_time.iloc[0], it_per_s=h.iteration.iloc[0] / h.wall_time.iloc[0],
                     psnr=h.filter(like="psnr_").iloc[0, 0]))
pd.DataFrame(rows).to_csv(f"{sys.argv[1]}/gpu_epoch.csv", index=False)
print(pd.DataFrame(rows).to_string(index=False))
PY
[ "${GRID:-1}" = 1 ] && timeout 300 python3 -m pspl_nb.experiments --profile cpu --jobs 8 --out "$out/critical_gpu.csv"
