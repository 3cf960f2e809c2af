"""``hybridgl calibrate``: logistic fits, the presence threshold and the YAML it writes."""
import argparse

import numpy as np
import pytest

from hybridgl_ros.core.config import PRESENCE_SIGNALS, HybridGLConfig
from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.eval.calibrate import (
    calibrate, fit_logistic, presence_threshold, register, snippet)
from hybridgl_ros.eval.records import ResultsWriter


def test_logistic_fit_recovers_the_generating_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, (4000, 2))
    logit = 0.3 * (x[:, 0] - 50.0) - 0.1 * (x[:, 1] - 50.0)
    y = rng.random(4000) < 1 / (1 + np.exp(-logit))
    weights, bias = fit_logistic(x, y)
    assert weights == pytest.approx([0.3, -0.1], abs=0.03)
    assert bias == pytest.approx(-0.3 * 50 + 0.1 * 50, abs=1.0)


def test_a_separating_signal_keeps_finite_coefficients():
    x = np.array([[0.0], [0.0], [1.0], [1.0]])
    weights, bias = fit_logistic(x, np.array([0, 0, 1, 1]))
    assert np.isfinite(weights).all() and np.isfinite(bias) and weights[0] > 0


def test_the_threshold_uses_the_budget_of_present_targets_rejected():
    present = np.linspace(0.0, 1.0, 101)
    threshold = presence_threshold(present, 0.05)
    assert threshold == pytest.approx(0.05) and (present < threshold).mean() <= 0.05
    assert presence_threshold(np.linspace(0.6, 1.0, 100), 0.05) > 0.6
    # the absent targets overlap the present ones: the budget decides
    assert presence_threshold(present, 0.05, np.linspace(0.0, 0.5, 50)) == threshold


def test_the_threshold_goes_no_higher_than_rejecting_every_absent_target_needs():
    present = np.linspace(0.6, 1.0, 100)
    threshold = presence_threshold(present, 0.05, np.array([0.1, 0.3]))
    assert 0.3 < threshold < 0.3 + 1e-9 and not (present < threshold).any()


def _records(count=600, seed=1):
    """Targets present 3 times in 4; s of the best mask ~ 60 when present, ~ 30 when not;
    the chosen mask is right when its s margin is large."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        present = rng.random() < 0.75
        s_top = rng.normal(60 if present else 30, 6)
        margin = rng.normal(5, 5)
        right = present and rng.random() < 1 / (1 + np.exp(-(margin - 2)))
        out.append({'status': 'ok', 'no_target': not present, 'choice_iou': 0.9 if right else 0.1,
                    'signals': {'presence_x': [s_top, 0.0, 0.0, 0.0, 10.0]
                                              + [0.0] * (PRESENCE_SIGNALS - 5),
                                'confidence_x': [s_top, margin, 0.0, 0.1, 0.0, 0.0, 5.0]}})
    return out


def test_calibration_separates_absent_targets_and_calibrates_the_confidence():
    fit = calibrate(_records(), max_rejected=0.05)
    assert fit['N_acc'] > 0.9 and fit['T_acc'] >= 0.95 - 1e-9
    assert fit['ECE'] < 0.06
    decision = fit['decision']
    assert len(decision['presence_weights']) == 20 and len(decision['confidence_weights']) == 7
    assert decision['presence_weights'][0] > 0 and decision['confidence_weights'][1] > 0


def test_calibration_needs_both_kinds_of_expression():
    records = [r for r in _records() if not r['no_target']]
    with pytest.raises(ConfigError, match='with and without a target'):
        calibrate(records)


def test_the_snippet_is_a_config_file_for_the_fitted_weights(tmp_path):
    fit = calibrate(_records())
    path = tmp_path / 'calibration.yaml'
    path.write_text(snippet(fit, '0123456789abcdef', ['run/results.jsonl']))
    config = HybridGLConfig.from_yaml(path)
    assert config.decision.calibrated_for == '0123456789abcdef'
    assert config.decision.presence_weights == pytest.approx(fit['decision']['presence_weights'])
    assert config.decision.presence_threshold == fit['decision']['presence_threshold']


def test_the_command_reads_eval_runs_and_writes_the_section(tmp_path, capsys):
    with ResultsWriter.create(tmp_path / 'run' / 'results.jsonl',
                              {'clip_fingerprint': 'feedfacefeedface'}) as writer:
        for record in _records(300):
            writer.write({'kind': 'query', **record})
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(['calibrate', str(tmp_path / 'run'), '--out',
                              str(tmp_path / 'c.yaml')])
    assert args.func(args) == 0
    assert 'calibrated_for: feedfacefeedface' in capsys.readouterr().out
    assert HybridGLConfig.from_yaml(tmp_path / 'c.yaml').decision.calibrated_for == (
        'feedfacefeedface')


def _camera(count, present_s, seed):
    """Records of one camera whose present targets' best s is ~ present_s (absent ~ 30)."""
    records = _records(count, seed)
    for r in records:
        if not r['no_target']:
            r['signals']['presence_x'][0] += present_s - 60.0
    return records


def _p_present(records, decision):
    """P(present) of each record with a target under a fit's ``decision`` section."""
    x = np.array([r['signals']['presence_x'] for r in records if not r['no_target']])
    return 1.0 / (1.0 + np.exp(-(x @ np.array(decision['presence_weights'])
                                 + decision['presence_bias'])))


def test_a_budget_per_group_keeps_each_cameras_rejections_within_it():
    sure, unsure = _camera(800, 60.0, 4), _camera(400, 48.0, 5)
    pooled = calibrate(sure + unsure)
    grouped = calibrate(sure + unsure, groups=['sure'] * 800 + ['unsure'] * 400)

    def rejected(records, threshold):
        return np.mean(_p_present(records, grouped['decision']) < threshold)

    # the same P(present) fit; pooled, the unsure camera pays for the sure one
    assert grouped['decision']['presence_weights'] == pooled['decision']['presence_weights']
    assert rejected(unsure, pooled['decision']['presence_threshold']) > 0.06
    threshold = grouped['decision']['presence_threshold']
    assert threshold == pytest.approx(min(grouped['group_thresholds'].values()), abs=1e-4)
    assert threshold <= min(grouped['group_thresholds'].values())
    assert threshold < pooled['decision']['presence_threshold']
    assert rejected(unsure, threshold) <= 0.05 and rejected(sure, threshold) <= 0.05
    assert set(grouped['group_thresholds']) == {'sure', 'unsure'}
    assert 'threshold within the budget in every group: sure' in snippet(grouped, 'f' * 16, [])
    # a record without the decision's signals is left out with its group name
    failed = {'status': 'error', 'no_target': False}
    again = calibrate([failed] + sure + unsure, groups=['unsure'] + ['sure'] * 800
                      + ['unsure'] * 400)
    assert again['group_thresholds'] == grouped['group_thresholds']
    with pytest.raises(ConfigError, match='group names'):
        calibrate(sure, groups=['sure'])


def test_a_phrase_form_whose_present_targets_score_lower_gets_its_own_threshold(tmp_path):
    # phrases naming a colour: present s ~ 60; anchored expressions: present s ~ 50
    coloured, anchored = _camera(900, 60.0, 6), _camera(300, 50.0, 7)
    for r in coloured:
        r['signals']['presence_x'][8] = 1.0
    for r in anchored:
        r['signals']['presence_x'][2] = 1.0
    fit = calibrate(coloured + anchored)
    d = fit['decision']

    def rejected(records, threshold):
        return np.mean(_p_present(records, d) < threshold)

    # one threshold held to the budget over all present targets rejects more of the
    # anchored ones; the anchored form's own keeps within the budget, the others' stay
    assert rejected(anchored, d['presence_threshold']) > 0.05
    assert d['presence_threshold_anchored'] < d['presence_threshold']
    assert rejected(anchored, d['presence_threshold_anchored']) <= 0.05
    assert rejected(coloured, d['presence_threshold']) <= 0.05
    assert d['presence_threshold_plain'] == d['presence_threshold']   # no such phrases
    path = tmp_path / 'calibration.yaml'
    path.write_text(snippet(fit, 'f' * 16, []))
    config = HybridGLConfig.from_yaml(path)
    assert config.decision.presence_threshold_anchored == d['presence_threshold_anchored']


def test_answers_the_relation_rule_rejects_take_their_share_of_the_budget_first():
    """Records whose relation held for nothing (signal relation_absent: decision.
    relation_fails_absent) are "not found" whatever their P(present): 3 % of the present
    targets here, so the threshold may reject only about 2 % more, and they count as
    rejected (N-acc, T-acc, the confidence fit) however high their P(present)."""
    records = _records(1000, seed=3)
    present = [r for r in records if not r['no_target']]
    for r in present[:int(0.03 * len(present))]:
        r['signals']['relation_absent'] = True
    for r in [r for r in records if r['no_target']][:40]:
        r['signals']['presence_x'][0] = 90.0              # looks present, but ruled out
        r['signals']['relation_absent'] = True
    plain = calibrate(_records(1000, seed=3))
    ruled = calibrate(records)
    d = ruled['decision']
    rule = np.array([bool(r['signals'].get('relation_absent')) for r in present])
    below = _p_present(present, d) < d['presence_threshold']
    assert (below | rule).mean() <= 0.05 and (below & ~rule).mean() <= 0.021
    assert d['presence_threshold'] < plain['decision']['presence_threshold']
    assert ruled['T_acc'] >= 0.95 - 1e-9 and ruled['T_acc'] <= 0.97 + 1e-9
    assert ruled['N_acc'] > 0.9


def test_the_command_groups_runs_by_a_word_of_their_path(tmp_path, capsys):
    for name, records in (('cam_sure', _camera(300, 60.0, 6)),
                          ('cam_unsure', _camera(200, 48.0, 7))):
        with ResultsWriter.create(tmp_path / name / 'results.jsonl',
                                  {'clip_fingerprint': 'feedfacefeedface'}) as writer:
            for record in records:
                writer.write({'kind': 'query', **record})
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    runs = [str(tmp_path / 'cam_sure'), str(tmp_path / 'cam_unsure')]
    args = parser.parse_args(['calibrate', *runs, '--budget-per', '_sure,_unsure'])
    assert args.func(args) == 0
    assert 'every group: _sure' in capsys.readouterr().out
    for words, message in (('_sure', 'names 0 of the groups'), ('cam,_sure,_unsure', 'names 2'),
                           ('_sure,_unsure,other', "no run path names \\['other'\\]")):
        args = parser.parse_args(['calibrate', *runs, '--budget-per', words])
        with pytest.raises(ConfigError, match=message):
            args.func(args)


def test_runs_of_different_signal_lengths_are_refused():
    records = _records()
    records[0] = dict(records[0], signals=dict(records[0]['signals'], presence_x=[50.0, 0, 0, 0]))
    with pytest.raises(ConfigError, match='different lengths'):
        calibrate(records)


def _with_ties(records, seed=3):
    """``records`` with a tie_margin each: single-target ones spread over 0-60 logits (a third
    with no object that may tie), look-alike (two-target) ones over 0-25; s of the best mask
    ≥ 50 when present, ≤ 40 when not, so that no present target is rejected."""
    rng = np.random.default_rng(seed)
    out = []
    for r in records:
        multi = not r['no_target'] and rng.random() < 0.3
        tie = (rng.uniform(0, 25) if multi else
               100.0 if rng.random() < 1 / 3 else rng.uniform(0, 60))
        x = list(r['signals']['presence_x'])
        x[0] = min(x[0], 40.0) if r['no_target'] else max(x[0], 50.0)
        out.append(dict(r, targets=2 if multi else 1,
                        signals=dict(r['signals'], presence_x=x, tie_margin=float(tie))))
    return out


def _flagged(records, margin, multi):
    chosen = [r for r in records if not r['no_target'] and (r['targets'] > 1) == multi]
    return np.mean([r['signals']['tie_margin'] <= margin for r in chosen])


def test_the_ambiguity_margin_is_the_widest_within_the_false_flag_budget():
    records = _with_ties(_records())
    fit = calibrate(records, max_flagged=0.05)
    margin = fit['decision']['ambiguity_margin']
    assert _flagged(records, margin, multi=False) <= 0.05
    assert _flagged(records, margin + 0.2, multi=False) > 0.05 - 0.01     # the widest such
    assert fit['flagged']['single'] <= 0.05 and fit['flagged']['multi'] > 0.05
    assert 'ambiguity margin flags' in snippet(fit, 'f' * 16, ['run'])
    wider = calibrate(records, max_flagged=0.2)['decision']['ambiguity_margin']
    assert wider > margin


def test_the_ambiguity_margin_keeps_its_budget_in_every_group():
    records = _with_ties(_records(count=900))
    # the second group's single-target answers have their look-alikes nearer
    groups = ['a' if k % 2 else 'b' for k in range(len(records))]
    for r, g in zip(records, groups):
        if g == 'b' and r['signals']['tie_margin'] < 100:
            r['signals']['tie_margin'] /= 2
    margin = calibrate(records, groups=groups)['decision']['ambiguity_margin']
    mine = [r for r, g in zip(records, groups) if g == 'b']
    assert _flagged(mine, margin, multi=False) <= 0.05
    assert margin < calibrate(records)['decision']['ambiguity_margin']


def test_runs_without_tie_margins_leave_the_ambiguity_margin_as_it_is():
    assert 'ambiguity_margin' not in calibrate(_records())['decision']
    few = _with_ties(_records(count=12, seed=5))
    few[0]['no_target'], few[1]['no_target'] = True, False    # both kinds of expression
    assert 'ambiguity_margin' not in calibrate(few)['decision']
