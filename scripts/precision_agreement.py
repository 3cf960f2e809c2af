#!/usr/bin/env python3
"""Reduced precision against fp32 on the parity cases: same top-3, same mask?

Runs every parity case (synthetic images, fixed proposals, the shared random ViT-B/16) twice in
default mode, once with models.precision=fp32 and once with the precision asked for, on one
device, and prints how many queries keep their top-3 (in order) and their chosen mask. Used by
scripts/gpu_check.sh (CUDA, 'auto' = fp16 autocast) and for the README's CPU figures.

    .venv/bin/python scripts/precision_agreement.py --device cpu --precision bf16
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--precision', default='auto', choices=('auto', 'fp16', 'bf16'))
    parser.add_argument('--cases', default='', help='comma-separated case ids (default: all)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    args = parser.parse_args()

    import torch

    import parity_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    case_ids = [c for c in args.cases.split(',') if c]
    clip = parity_precision.parity_clip(args.device)
    seconds, runs = {}, {}
    for precision in ('fp32', args.precision):
        segmenter, proposer = parity_precision.parity_segmenter(precision, args.device, clip)
        start = time.perf_counter()
        runs[precision] = parity_precision.parity_answers(segmenter, proposer, case_ids)
        seconds[precision] = round(time.perf_counter() - start, 1)
    report = parity_precision.agreement(runs['fp32'], runs[args.precision])
    report.update(device=args.device, precision=args.precision, seconds=seconds,
                  differ=[f'{case}: {text!r}' for case, text in report['differ']])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
