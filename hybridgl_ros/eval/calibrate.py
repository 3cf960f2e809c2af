"""``hybridgl calibrate``: fit the decision's coefficients (core/decision.py) to an eval run.

The decision's P(target present) and P(right) are logistic functions of signals the method
computes (the records' ``signals``); how those signals read depends on the CLIP weights, so
each set of weights needs its own fit. The fit:

1. P(present) by logistic regression of "the expression has a target" on ``presence_x``;
2. the presence threshold: the highest that rejects at most ``max_rejected`` of the
   expressions with a target on this data (so the most of those without one within that
   budget), but no higher than rejecting every expression without a target needs; with
   groups (``--budget-per``: one per camera, renderer or data set), the highest that keeps
   within the budget in every group, so a camera whose targets the CLIP matches less surely
   is not traded for another's; then lowered, for each phrase form (``core.decision.
   phrase_form``: a target phrase naming a colour, one naming none, an expression with an
   anchor phrase) whose present targets it would reject more than the budget of (in a
   group), to the highest that keeps within it: the forms' present targets reach different
   P(present) levels, and a planner asking "the cube left of the ball" is owed the same
   budget as one asking "the red cube";
   an answer the relation rule makes "not found" (``decision.relation_fails_absent``: the
   record's ``relation_absent`` signal) counts as rejected whatever its P(present), so its
   present targets take their share of the budget first;
3. P(right | present) by logistic regression of "the chosen mask is a target" on
   ``confidence_x`` over the answers that threshold keeps whose expression has a target; a
   kept answer's confidence is P(present) times it, a rejected one's 1 − P(present);
4. the ambiguity margin: the widest s margin that flags at most ``max_flagged`` of the
   expressions with one target (a "which one?" where there is no question; in each group with
   ``--budget-per``), so the most answers with a look-alike as good within that budget: an
   answer is flagged when its ``tie_margin`` signal (the s margin to the nearest object that
   may tie with it: ``core.decision``) is at most the margin. The fit also reports the share
   of the expressions with several targets (gRefCOCO's multi-target expressions, the
   generated look-alike queries) it flags.

Fit on a run whose expressions resemble the robot's (gRefCOCO val with real weights; the
generated scenes for the demo models); the result is a ``decision:`` YAML section to pass with
``--config`` or to merge into the node's parameters.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from hybridgl_ros.cli import share
from hybridgl_ros.core.config import PRESENCE_THRESHOLD_FIELDS
from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.eval.grounding import IOU_HIT, calibration_bins

_LOG = logging.getLogger(__name__)
#: L2 penalty on the standardised coefficients (keeps a separating signal finite).
L2_PENALTY = 1e-3
#: Fewest single-target expressions (in each group) to fit the ambiguity margin on.
MIN_SINGLE_TARGET = 10


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2_PENALTY,
                 iterations: int = 100) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method on standardised features.

    Args:
        x: (N, D) features.
        y: (N,) 0/1 labels.
        l2: penalty on the standardised coefficients.

    Returns:
        (D,) weights and the bias, for the raw (unstandardised) features.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])         # (N, D + 1)
    theta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2 * len(x))
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ theta, -40, 40)))
        gradient = z.T @ (p - y) + penalty * theta
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = theta[:-1] / std
    return weights, float(theta[-1] - (weights * mean).sum())


def _sigmoid(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64) @ weights + bias, -40, 40)))


def usable_records(records: Iterable[Mapping]) -> list[Mapping]:
    """The answered queries that carry the decision's signals."""
    return [r for r in records if _usable(r)]


def _usable(record: Mapping) -> bool:
    return (record.get('status') == 'ok' and 'presence_x' in record.get('signals', {})
            and 'confidence_x' in record['signals'])


def calibrate(records: Sequence[Mapping], max_rejected: float = 0.05,
              max_flagged: float = 0.05, groups: Sequence[str] | None = None) -> dict:
    """Fits the ``decision`` coefficients; returns them with the fit's figures.

    Args:
        records: eval records (those without the decision's signals are left out).
        max_rejected: share of the present targets the threshold may reject.
        max_flagged: share of the single-target expressions the ambiguity margin may flag.
        groups: one name per record (its camera, renderer or data set): the threshold then
            keeps within ``max_rejected`` and the margin within ``max_flagged`` in every
            group, not only overall; None: overall.

    Raises:
        ConfigError: no usable records, or no expression without (or with) a target.
    """
    from hybridgl_ros.core.presence import phrase_form

    if groups is not None:
        if len(groups) != len(records):
            raise ConfigError(f'{len(groups)} group names for {len(records)} records')
        groups = [g for r, g in zip(records, groups) if _usable(r)]
    records = usable_records(records)
    present = np.array([not r.get('no_target') for r in records])
    if not records or present.all() or not present.any():
        raise ConfigError('calibration needs eval records (with signals) of expressions with '
                          'and without a target: run hybridgl eval on a gRefCOCO-layout set')
    if (len({len(r['signals']['presence_x']) for r in records}) > 1
            or len({len(r['signals']['confidence_x']) for r in records}) > 1):
        raise ConfigError('the runs record decision signals of different lengths (different '
                          'versions of hybridgl_ros): calibrate on runs of one version')
    x_p = np.array([r['signals']['presence_x'] for r in records])
    w_p, b_p = fit_logistic(x_p, present)
    p_present = _sigmoid(x_p, w_p, b_p)
    # answers the relation rule makes "not found" whatever P(present) says (decision.
    # relation_fails_absent): below every threshold, so their present targets use the budget
    ruled = np.array([bool(r['signals'].get('relation_absent', False)) for r in records])
    p_ruled = np.where(ruled, -1.0, p_present)
    threshold = presence_threshold(p_ruled[present], max_rejected, p_ruled[~present])
    names = np.array(groups if groups is not None else [''] * len(records))
    by_group = {}
    if groups is not None:
        by_group = group_thresholds(p_ruled, present, names, max_rejected)
        threshold = min([threshold, *by_group.values()])
    forms = np.array([phrase_form(r['signals']['presence_x']) for r in records])
    by_form = {form: max(0.0, min([threshold, *group_thresholds(
                   p_ruled, present & (forms == form), names, max_rejected).values()]))
               for form in PRESENCE_THRESHOLD_FIELDS}
    kept = ~ruled & (p_present >= np.array([by_form[form] for form in forms]))
    right = present & np.array([r.get('choice_iou', 0.0) >= IOU_HIT for r in records])
    x_c = np.array([r['signals']['confidence_x'] for r in records])
    # P(right | present) on the kept answers whose target is there; an answer's confidence is
    # P(present) times it (core.decision): a kept answer to an absent target is wrong
    # however its pick reads, and P(present) already weighs that
    w_c, b_c = fit_logistic(x_c[kept & present], right[kept & present])
    confidence = np.where(kept, p_present * _sigmoid(x_c, w_c, b_c), 1.0 - p_present)
    answer_right = np.where(kept, right, ~present)
    ece, _ = calibration_bins(confidence, answer_right)
    # rounded down: a threshold rounded up could reject one more present target than the budget
    fields = {**{field: math.floor(float(by_form[form]) * 1e4) / 1e4
                 for form, field in PRESENCE_THRESHOLD_FIELDS.items()},
              'presence_weights': [round(float(v), 6) for v in w_p],
              'presence_bias': round(b_p, 6),
              'confidence_weights': [round(float(v), 6) for v in w_c],
              'confidence_bias': round(b_c, 6)}
    fit = {'decision': fields, 'queries': len(records), 'group_thresholds': by_group,
           'N_acc': float((~kept[~present]).mean()), 'T_acc': float(kept[present].mean()),
           'right': float(answer_right.mean()), 'ECE': ece}
    ties = tie_margins(records, kept)
    margin = None if ties is None else ambiguity_margin(records, ties, max_flagged, names)
    if margin is not None:
        fields['ambiguity_margin'] = margin
        fit['flagged'] = flagged_shares(records, ties, margin)
    else:
        _LOG.warning('ambiguity margin not fitted (left as it is): the runs record no '
                     'tie_margin (run hybridgl eval again with this version) or have fewer than '
                     '%d single-target expressions in a group', MIN_SINGLE_TARGET)
    return fit


def tie_margins(records: Sequence[Mapping], kept: np.ndarray) -> np.ndarray | None:
    """(N,) each record's ``tie_margin`` signal (inf where the answer is not kept or has no
    object that may tie: no margin flags it); None when the records lack the signal (runs of
    a version before it)."""
    from hybridgl_ros.core.candidates import TIE_MARGIN_CAP

    if not all('tie_margin' in r['signals'] for r in records):
        return None
    margins = np.array([float(r['signals']['tie_margin']) for r in records])
    return np.where(kept & (margins < TIE_MARGIN_CAP), np.maximum(margins, 0.0), np.inf)


def ambiguity_margin(records: Sequence[Mapping], margins: np.ndarray, max_flagged: float,
                     groups: np.ndarray) -> float | None:
    """The widest s margin (rounded down to 0.1) that flags at most ``max_flagged`` of the
    single-target expressions, in every group, given their :func:`tie_margins`; None when a
    group has fewer than MIN_SINGLE_TARGET of them."""
    from hybridgl_ros.core.candidates import TIE_MARGIN_CAP

    single = np.array([not r.get('no_target') and r.get('targets', 1) <= 1 for r in records])
    widest = math.inf
    for name in sorted(set(groups)):
        mine = np.sort(margins[single & (groups == name)])
        if len(mine) < MIN_SINGLE_TARGET:
            return None
        allowed = int(math.floor(max_flagged * len(mine) + 1e-9))
        if allowed < len(mine) and math.isfinite(mine[allowed]):
            # below the first margin the budget has no room for
            widest = min(widest, math.floor(mine[allowed] * 10.0 - 1e-6) / 10.0)
    return float(min(widest, TIE_MARGIN_CAP))


def flagged_shares(records: Sequence[Mapping], margins: np.ndarray, margin: float
                   ) -> dict[str, float]:
    """Share of the single-target and of the multi-target expressions ``margin`` flags, given
    their :func:`tie_margins`."""
    flagged = margins <= margin
    present = np.array([not r.get('no_target') for r in records])
    multi = present & np.array([r.get('targets', 1) > 1 for r in records])
    single = present & ~multi
    return {'single': float(flagged[single].mean()) if single.any() else float('nan'),
            'multi': float(flagged[multi].mean()) if multi.any() else float('nan')}


def group_thresholds(p_present: np.ndarray, mine: np.ndarray, groups: np.ndarray,
                     max_rejected: float) -> dict[str, float]:
    """Group name → the budget's threshold of the present targets ``mine`` (all of them, or
    one phrase form's) in that group, for each group that has any."""
    return {str(name): presence_threshold(p_present[mine & (groups == name)], max_rejected)
            for name in sorted(set(groups)) if (mine & (groups == name)).any()}


def presence_threshold(p_present_targets: np.ndarray, max_rejected: float,
                       p_absent_targets: np.ndarray | None = None) -> float:
    """The P(present) threshold (an answer below it is "not found"): the highest that leaves
    at most ``max_rejected`` of the present targets below it, i.e. the operating point that
    rejects the most absent targets within that budget; lowered to just above the highest
    P(present) of an absent target when that already rejects them all. 0.5 without data."""
    if len(p_present_targets) == 0:
        return 0.5
    threshold = float(np.quantile(p_present_targets, max_rejected, method='lower'))
    if p_absent_targets is not None and len(p_absent_targets):
        threshold = min(threshold, float(np.nextafter(np.max(p_absent_targets), np.inf)))
    return threshold


def snippet(fit: Mapping, fingerprint: str, sources: Sequence[str]) -> str:
    """The ``decision:`` YAML section of a fit (comments say what it was fitted on)."""
    import yaml

    fields = dict(fit['decision'], calibrated_for=fingerprint)
    head = [f'# hybridgl calibrate: {fit["queries"]} queries of {", ".join(sources)}',
            f'# on this data: N-acc {100 * fit["N_acc"]:.1f} %, T-acc {100 * fit["T_acc"]:.1f} %,'
            f' right {100 * fit["right"]:.1f} %, ECE {100 * fit["ECE"]:.1f} %',
            '# use: hybridgl ... --config this.yaml (or merge into the node\'s parameters)']
    if fit.get('flagged'):
        head.insert(2, f'# ambiguity margin flags {100 * fit["flagged"]["single"]:.1f} % of the '
                       f'single-target, {100 * fit["flagged"]["multi"]:.1f} % of the '
                       f'multi-target expressions')
    if fit.get('group_thresholds'):
        head.insert(2, '# threshold within the budget in every group: ' + ', '.join(
            f'{name} {value:.4f}' for name, value in fit['group_thresholds'].items()))
    return '\n'.join(head) + '\n' + yaml.safe_dump({'decision': fields}, sort_keys=False,
                                                     default_flow_style=None)


def run_calibrate(args) -> int:
    """Handler of ``hybridgl calibrate``: fits, writes (or prints) the YAML section."""
    from hybridgl_ros.eval.merge import collect_files
    from hybridgl_ros.eval.records import read_results

    records, fingerprints, groups = [], set(), []
    files = collect_files(args.inputs)
    words = [w for w in (args.budget_per or '').split(',') if w]
    for path in files:
        header, rows, _ = read_results(path)
        fingerprints.add(header.get('clip_fingerprint', ''))
        records += rows
        if words:
            group = [w for w in words if w in str(path)]
            if len(group) != 1:
                raise ConfigError(f'--budget-per: {path} names {len(group)} of the groups '
                                  f'{words} in its path; each run must name exactly one')
            groups += group * len(rows)
    if len(fingerprints) != 1 or not next(iter(fingerprints)):
        raise ConfigError(f'the runs must come from one CLIP whose fingerprint they record; '
                          f'found {sorted(fingerprints)}')
    if words and set(groups) != set(words):
        raise ConfigError(f'--budget-per: no run path names {sorted(set(words) - set(groups))}')
    fit = calibrate(records, args.max_rejected, args.max_flagged, groups if words else None)
    text = snippet(fit, fingerprints.pop(), [str(p) for p in files])
    if args.out:
        Path(args.out).write_text(text)
        _LOG.info('wrote %s', args.out)
    print(text, end='')
    return 0 if math.isfinite(fit['ECE']) else 1


def register(subparsers) -> None:
    """Adds ``calibrate`` to the ``hybridgl`` command."""
    parser = subparsers.add_parser(
        'calibrate', help='fit the not-found / confidence coefficients to eval runs',
        description='Fit decision.* (P(present), threshold, P(right), ambiguity margin) to '
                    'the records of hybridgl eval runs of one CLIP; prints a YAML section '
                    'for --config.')
    parser.add_argument('inputs', nargs='+', help='results*.jsonl files or folders')
    parser.add_argument('--out', help='also write the YAML section here')
    parser.add_argument('--max-rejected', type=share, default=0.05,
                        help='share of present targets the threshold may reject on this data '
                             '(it rejects the most absent ones within it)')
    parser.add_argument('--budget-per', metavar='WORD[,WORD...]',
                        help='hold the --max-rejected budget in each group of runs whose path '
                             'names the word (a camera, a renderer: "shaded,flat"), not only '
                             'over all of them')
    parser.add_argument('--max-flagged', type=share, default=0.05,
                        help='share of the single-target expressions the ambiguity margin may '
                             'flag (it flags the most look-alikes within it; in each group '
                             'with --budget-per)')
    parser.set_defaults(func=run_calibrate)
