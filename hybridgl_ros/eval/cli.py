"""``hybridgl eval`` and ``hybridgl eval-merge``: reproduce the paper's tables.

``register(subparsers)`` adds both commands to the main ``hybridgl`` parser; each sets
``func`` (called with the parsed namespace, returns the exit status). ``main(argv)`` runs them
stand-alone: ``python -m hybridgl_ros.eval.cli eval --dataset refcoco ...``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from hybridgl_ros.cli import positive_int
from hybridgl_ros.core.config import FEATURE_MODES, PHRASECUT_PROPOSALS, HybridGLConfig
from hybridgl_ros.core.errors import HybridGLError
from hybridgl_ros.eval.datasets import DATASETS

_LOG = logging.getLogger(__name__)

#: CLI switch (argparse dest) -> the config field it turns off.
ABLATION_SWITCHES = {'no_relation': 'guidance.use_relation',
                     'no_coherence': 'guidance.use_coherence',
                     'no_position': 'guidance.use_position'}


def build_config(args: argparse.Namespace) -> HybridGLConfig:
    """The run's config: the shared options of ``hybridgl`` (``--config``, ``--set``,
    ``--device``, ...), then the ablation switches, which change exactly their own field.

    PhraseCut starts from SAM's dense recipe (spec §3): there, only settings that differ from
    the defaults (in the file or the options) are applied on top of it.
    """
    from hybridgl_ros.cli import config_from_args

    config = config_from_args(args)
    if args.dataset == 'phrasecut':
        defaults = HybridGLConfig().to_flat()
        changed = {k: v for k, v in config.to_flat().items() if v != defaults[k]}
        config = HybridGLConfig.from_flat(
            changed, replace(HybridGLConfig(), proposals=PHRASECUT_PROPOSALS))
    ablations: dict[str, Any] = {field: False for dest, field in ABLATION_SWITCHES.items()
                                 if getattr(args, dest)}
    if args.features:
        ablations['features.mode'] = args.features
    return HybridGLConfig.from_flat(ablations, config)


def default_model_factory(config: HybridGLConfig) -> Any:
    """The real method: ``HybridGL.from_config`` (models load here, once per run)."""
    from hybridgl_ros.core.pipeline import HybridGL

    return HybridGL.from_config(config)


def run_eval(args: argparse.Namespace,
             model_factory: Callable[[HybridGLConfig], Any] | None = None) -> int:
    """Handler of ``hybridgl eval``: prints the table; 130 if interrupted (resumable)."""
    from hybridgl_ros.eval.merge import run_tag
    from hybridgl_ros.eval.runner import EvalSettings, evaluate, parse_shard

    config = build_config(args)
    out_dir = Path(args.out) if args.out else Path('eval_out') / run_tag(
        args.dataset, args.split, config.to_flat())
    settings = EvalSettings(
        dataset=args.dataset, split=args.split, data_root=Path(args.data_root),
        out_dir=out_dir, image_dir=Path(args.image_dir) if args.image_dir else None,
        limit=args.limit, shard=parse_shard(args.shard), resume=args.resume,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        progress=not args.no_progress)
    try:
        summary = evaluate(settings, config, model_factory or default_model_factory)
    except KeyboardInterrupt:
        _LOG.warning('interrupted; every finished query is saved in %s: run the same command '
                     'with --resume to continue', settings.file('results', '.jsonl'))
        return 130
    sys.stdout.write(settings.file('table', '.md').read_text())
    if args.plots:
        _write_plots(settings, summary)
    sys.stdout.write(f'\nresults in {out_dir}\n')
    return 0


def _write_plots(settings, summary: dict) -> None:
    """The reliability diagram (needs expressions with confidences: a gRefCOCO-layout run)
    and the answers by target size (needs single-target expressions)."""
    from hybridgl_ros.eval.plots import write_reliability_plot, write_size_plot

    grounding = summary.get('grounding')
    if grounding and grounding.get('by_target_size'):
        sizes = grounding['by_target_size']
        path = write_size_plot(settings.file('by_size', '.png'), grounding,
                               f'{summary["dataset"]} {summary["split"]} '
                               f'({settings.data_root.name}), '
                               f'{sum(g["queries"] for g in sizes.values())} single-target '
                               f'expressions')
        sys.stdout.write(f'answers by target size: {path}\n')
    if not grounding or not grounding['answers_with_confidence']:
        _LOG.warning('--plots: no answer has a confidence (uncalibrated weights, or a dataset '
                     'without the records it needs): no reliability diagram')
        return
    path = write_reliability_plot(settings.file('reliability', '.png'), grounding,
                                  f'{summary["dataset"]} {summary["split"]}, '
                                  f'{grounding["answers_with_confidence"]} answers')
    sys.stdout.write(f'reliability diagram: {path}\n')


def run_merge(args: argparse.Namespace) -> int:
    """Handler of ``hybridgl eval-merge``: merges shards, prints the table."""
    from hybridgl_ros.eval.merge import merge

    merge(args.inputs, args.out)
    sys.stdout.write((Path(args.out) / 'table.md').read_text())
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hybridgl eval``."""
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--split', required=True,
                        help='val/testA/testB (refcoco, refcoco+), val/test (refcocog), '
                             'test (phrasecut)')
    parser.add_argument('--data-root', required=True, help='folder holding the dataset')
    parser.add_argument('--image-dir', help='image folder (default: found under --data-root)')
    parser.add_argument('--features', choices=FEATURE_MODES,
                        help='features.mode (Table 3 ablation)')
    parser.add_argument('--no-relation', action='store_true', help='guidance.use_relation off')
    parser.add_argument('--no-coherence', action='store_true',
                        help='guidance.use_coherence off')
    parser.add_argument('--no-position', action='store_true', help='guidance.use_position off')
    parser.add_argument('--limit', type=positive_int, help='only the first N queries')
    parser.add_argument('--shard', default='1/1', metavar='K/N',
                        help='every N-th image from the K-th (1-based); join with eval-merge')
    parser.add_argument('--resume', action='store_true',
                        help='continue the results file in --out')
    parser.add_argument('--out', help='output folder (default: eval_out/<dataset>-<split>...)')
    parser.add_argument('--cache-dir', help='per-image frame cache (SAM + CLIP results)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--plots', action='store_true',
                        help='also write reliability.png (confidence calibration) and '
                             'by_size.png (answers by the target\'s size at the working size)')
    from hybridgl_ros.cli import add_config_arguments

    add_config_arguments(parser)


def register(subparsers: Any) -> None:
    """Adds ``eval`` and ``eval-merge`` to the ``hybridgl`` command."""
    from hybridgl_ros.eval import calibrate

    evaluate = subparsers.add_parser(
        'eval', help='evaluate on RefCOCO/+/g, gRefCOCO or PhraseCut (oIoU, mIoU; N-acc, '
                     'T-acc, gIoU, ECE)',
        description='Evaluate HybridGL like the paper (Tables 1, 3, 5); on gRefCOCO also '
                    'the answers "not found" and "ambiguous" and the confidence.')
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=run_eval)
    merge = subparsers.add_parser('eval-merge', help='join the shards of eval runs',
                                  description='Join shard results into one summary and table.')
    merge.add_argument('inputs', nargs='+', help='results*.jsonl files or folders holding them')
    merge.add_argument('--out', required=True, help='output folder')
    merge.set_defaults(func=run_merge)
    calibrate.register(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point; errors are reported in one line with exit status 2."""
    parser = argparse.ArgumentParser(prog='hybridgl')
    register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        return args.func(args)
    except HybridGLError as exc:
        _LOG.error('%s', exc)
        return 2


if __name__ == '__main__':
    sys.exit(main())
