#!/usr/bin/env bash
# The CUDA path in one command (about 5 minutes on one GPU, after scripts/setup.sh):
#   1. the CUDA tests (pytest -m cuda): the bounded SAM generator against segment_anything's on
#      the GPU, GPU answers against the CPU's, a real CUDA out-of-memory refused and survived,
#      fp16 autocast keeping fp32's top-3 and mask on every parity case;
#   2. the fp16-vs-fp32 agreement figures on the parity cases (scripts/precision_agreement.py);
#   3. hybridgl bench for SAM ViT-H at 640x480 and 1920x1080: first and repeat query, per
#      stage, peak GPU memory.
# Everything it prints is also written to OUT_DIR (default: ./gpu_check_out).
#
#   bash scripts/gpu_check.sh [OUT_DIR]
#   bash scripts/gpu_check.sh --cpu-dry-run [OUT_DIR]   # the same steps, small, on the CPU
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dry_run=0
if [ "${1:-}" = "--cpu-dry-run" ]; then
  dry_run=1
  shift
fi
out="$(mkdir -p "${1:-gpu_check_out}" && cd "${1:-gpu_check_out}" && pwd)"
py="$repo/.venv/bin/python"
bash "$repo/scripts/setup.sh"
cd "$repo"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

step() { echo; echo "== $* ($(date +%T))" | tee -a "$out/summary.txt"; }

step "device"
"$py" - <<'EOF' | tee "$out/device.txt"
import platform, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, platform.processor())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0), round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1), 'GiB')
else:
    print('no CUDA device')
EOF
if [ "$dry_run" -eq 0 ] && ! "$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu_check: torch sees no CUDA device (use --cpu-dry-run to check the script on a CPU)" >&2
  exit 2
fi

if [ "$dry_run" -eq 1 ]; then
  device=cpu; precision=bf16; cases=c00_basic_lr,c01_west_east; sizes=640x480
  sam=hybridgl_ros/demo_models/sam_arch.json   # a small random SAM: the plumbing only
  masks=4
else
  device=cuda; precision=auto; cases=''; sam=vit_h; sizes=640x480,1920x1080; masks=30
fi

step "CUDA tests (pytest -m cuda)"
bash scripts/test.sh -m cuda test/core -q -rs 2>&1 | tee "$out/cuda_tests.txt"

step "reduced precision ($precision on $device) against fp32 on the parity cases"
"$py" scripts/precision_agreement.py --device "$device" --precision "$precision" \
  --cases "$cases" 2>&1 | grep -v 'No pretrained weights' | tee "$out/precision_agreement.json"

step "hybridgl bench --sam $sam --sizes $sizes --device $device"
.venv/bin/hybridgl bench --sam "$sam" --sizes "$sizes" --device "$device" --masks "$masks" \
  --json 2>/dev/null > "$out/bench.json"
"$py" -c "import json, sys; from hybridgl_ros.bench import format_table; \
print(format_table(json.load(open(sys.argv[1]))))" "$out/bench.json" | tee "$out/bench.md"

step "done: results in $out"
