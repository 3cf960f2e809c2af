"""The ``hybridgl`` command: segment, bench, demo, make-scenes, train-demo-models, eval."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from hybridgl_ros.core.errors import HybridGLError, InvalidInputError

#: Modules that add subcommands with ``register(subparsers)``.
SUBCOMMAND_MODULES = ('hybridgl_ros.bench', 'hybridgl_ros.demo.showcase', 'hybridgl_ros.demo.cli',
                       'hybridgl_ros.eval.cli', 'hybridgl_ros.demo.track_eval')
LOG = logging.getLogger('hybridgl')


def add_config_arguments(parser: argparse.ArgumentParser,
                         config_help: str = 'YAML config file (see config/hybridgl.yaml)'
                         ) -> None:
    """The options every model-running subcommand shares (config file and overrides)."""
    group = parser.add_argument_group('configuration')
    group.add_argument('--config', help=config_help)
    group.add_argument('--device', choices=('auto', 'cpu', 'cuda'), help='models.device')
    group.add_argument('--parity', choices=('default', 'reference'),
                       help='reference: reproduce the authors\' released code (spec §12)')
    group.add_argument('--clip-model', help='models.clip_model: open_clip name or config JSON')
    group.add_argument('--clip-weights', help='models.clip_weights: CLIP weights file')
    group.add_argument('--sam-type', help='models.sam_model_type: vit_h, vit_l, vit_b or JSON')
    group.add_argument('--sam-checkpoint', help='models.sam_checkpoint: SAM checkpoint file')
    group.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE',
                       help='any config field, e.g. --set proposals.points_per_side=16')


def config_from_args(args: argparse.Namespace, default=None):
    """The HybridGLConfig the options describe (file first, then the overrides).

    Args:
        default: the config without ``--config`` (HybridGLConfig() if None).
    """
    from hybridgl_ros.core.config import HybridGLConfig

    if args.config:
        config = HybridGLConfig.from_yaml(args.config)
    else:
        config = default or HybridGLConfig()
    values = {}
    for option, field in (('device', 'models.device'), ('parity', 'parity'),
                          ('clip_model', 'models.clip_model'),
                          ('clip_weights', 'models.clip_weights'),
                          ('sam_type', 'models.sam_model_type'),
                          ('sam_checkpoint', 'models.sam_checkpoint')):
        if getattr(args, option, None) is not None:
            values[field] = getattr(args, option)
    for item in args.set:
        name, sep, value = item.partition('=')
        if not sep:
            raise HybridGLError(f'--set takes FIELD=VALUE, not {item!r}')
        values[name.strip()] = _parse_value(value.strip())
    return HybridGLConfig.from_flat(values, base=config)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count of scenes, clips, masks, queries)."""
    return _bounded(int, text, 1, None)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (0 = none or the default, as the option says)."""
    return _bounded(int, text, 0, None)


def share(text: str) -> float:
    """argparse type: a number in [0, 1] (a share of queries)."""
    return _bounded(float, text, 0.0, 1.0)


def _bounded(kind, text: str, low, high):
    try:
        value = kind(text)
    except ValueError:
        what = 'an integer' if kind is int else 'a number'
        raise argparse.ArgumentTypeError(f'{text!r} is not {what}') from None
    if not (value >= low and (high is None or value <= high)):       # NaN is neither
        raise argparse.ArgumentTypeError(
            f'must be {">= " + str(low) if high is None else f"in [{low}, {high}]"}, not {text}')
    return value


def _parse_value(text: str):
    if text.startswith('['):
        return json.loads(text)
    return text


def read_image_rgb(path: str | Path):
    """(H, W, 3) uint8 RGB from an image file (InvalidInputError if missing or unreadable)."""
    import cv2

    if not Path(path).is_file():
        raise InvalidInputError(f'no such image file: {path}')
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError(f'cannot read image {path} (not an image format OpenCV reads)')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image_rgb(path: str | Path, image_rgb) -> None:
    import cv2

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise HybridGLError(f'cannot write image {path}')


def cmd_segment(args: argparse.Namespace) -> int:
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.viz import draw_explanation

    image = read_image_rgb(args.image)
    segmenter = HybridGL.from_config(config_from_args(args))
    result = segmenter.segment(image, args.text, explain=args.explain)
    if args.out:
        write_image_rgb(args.out, draw_explanation(image, result))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result))
        if result.explanation is not None:
            print(format_explanation(result.explanation))
        if args.out:
            print(f'overlay: {args.out}')
    return 0


def format_result(result) -> str:
    """A few human-readable lines about a result."""
    p = result.parse
    lines = [f'text:      {result.text!r}',
             f'parsed:    target {p.head_phrase!r}, others {list(p.other_phrases)}, '
             f'relation {p.relation}, direction {p.direction}']
    sure = 'unknown' if result.confidence != result.confidence else f'{result.confidence:.2f}'
    if result.found:
        lines += [f'found:     proposal {result.index} of {len(result.matching_probs)} '
                  f'(score {result.score:.3f}; pure HybridGL would pick {result.pure_index})',
                  f'confidence: {sure}',
                  f'box xywh:  {list(result.box_xywh)}  area {int(result.mask.sum())} px',
                  f'centroid:  ({result.centroid_xy[0]:.1f}, {result.centroid_xy[1]:.1f}) px'
                  f'   interior point: {tuple(result.interior_xy)} px']
        if result.ambiguous:
            lines.append(f'AMBIGUOUS: {len(result.alternatives) + 1} objects fit about '
                         'equally; also ' + '; '.join(
                             f'proposal {a.index} box {list(a.box_xywh)} (conf '
                             f'{a.confidence:.2f})' for a in result.alternatives))
    else:
        lines += ['found:     nothing', f'confidence: {sure} (that nothing fits)']
    if result.message:
        lines.append(f'note:      {result.message}')
    timing = ', '.join(f'{k} {v:.0f}' for k, v in result.timings_ms.items())
    lines.append(f'ms:        {timing}')
    return '\n'.join(lines)


def format_explanation(explanation) -> str:
    """Why the mask was chosen: the guidance the query got and a table of the candidates."""
    e = explanation
    among = ('' if e.lookalike_relation == 'none'
             else f'; R among look-alikes ({e.lookalike_relation})')
    lines = [f'normalised: {e.parse.normalized!r}',
             f'guidance:  relation {e.relation}, direction {e.direction}, beta {e.beta:g}; '
             f'partners {[int(i) for i in e.partners]}{among}',
             '  cand     s        p        q        R    softmax(R)    S         F']
    for rank, index in enumerate(e.candidates):
        q = '      —' if e.other_probs is None else f'{e.other_probs[index]:8.4f}'
        mark = '  <- chosen' if int(index) == e.chosen else ''
        lines.append(
            f'  #{int(index):<4d}{e.similarities[index]:8.3f} {e.matching_probs[index]:8.4f}'
            f' {q} {e.relation_totals[rank]:8.4f} {e.relation_probs[rank]:9.4f}'
            f' {e.spatial_scores[index]:9.4f} {e.final_scores[rank]:9.4f}{mark}')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hybridgl', description='Referring-expression segmentation (HybridGL) for robots.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', required=True)
    seg = sub.add_parser('segment', help='segment the object an expression refers to')
    seg.add_argument('image', help='image file')
    seg.add_argument('text', help='referring expression, e.g. "the mug left of the laptop"')
    seg.add_argument('--out', help='write an overlay PNG here')
    seg.add_argument('--json', action='store_true', help='print the result as JSON')
    seg.add_argument('--explain', action='store_true',
                     help='say why: the parse, every candidate\'s s, p, q, R, S and F, and with '
                          '--out the spatial map A beside the overlay')
    add_config_arguments(seg)
    seg.set_defaults(func=cmd_segment)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return int(args.func(args) or 0)
    except HybridGLError as exc:
        print(f'hybridgl: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('hybridgl: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
