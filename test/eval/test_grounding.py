"""gRefCOCO's metrics, ambiguity rates and calibration error on hand-made records, and a run of
the evaluator on a tiny gRefCOCO."""
import json

import numpy as np
import pytest
from eval_data import StandInModel, write_grefcoco

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.eval.grounding import (calibration_bins, grounding_metrics, is_right,
                                         size_group_key)
from hybridgl_ros.eval.runner import EvalSettings, evaluate


def _record(found, no_target=False, best_iou=0.0, inter=0, union=10, targets=1,
            ambiguous=False, confidence=None, kind='attribute', text='the red ball'):
    return {'status': 'ok', 'found': found, 'no_target': no_target, 'best_iou': best_iou,
            'inter': inter, 'union': union, 'targets': 0 if no_target else targets,
            'ambiguous': ambiguous, 'confidence': confidence, 'query_kind': kind,
            'text': text}


RECORDS = [
    _record(True, best_iou=0.9, inter=9, union=10),                       # right
    _record(True, best_iou=0.2, inter=2, union=10),                       # wrong object
    _record(False, best_iou=0.0, inter=0, union=10),                      # present, rejected
    _record(False, no_target=True, inter=0, union=0, kind='absent'),      # right "not found"
    _record(True, no_target=True, inter=0, union=5, kind='absent'),       # wrong: found
    _record(True, best_iou=0.8, inter=8, union=20, targets=2, ambiguous=True,
            kind='ambiguous'),
]


def test_right_answers_are_hits_and_true_not_founds():
    assert [is_right(r) for r in RECORDS] == [True, False, False, True, False, True]


def test_n_acc_t_acc_and_the_rejection_rate():
    metrics = grounding_metrics(RECORDS)
    assert metrics['N_acc'] == pytest.approx(1 / 2)
    assert metrics['T_acc'] == pytest.approx(3 / 4)
    assert metrics['present_rejected'] == pytest.approx(1 / 4)


def test_giou_counts_a_right_not_found_as_one_and_ciou_as_nothing():
    metrics = grounding_metrics(RECORDS)
    ious = [0.9, 0.2, 0.0, 1.0, 0.0, 0.4]
    assert metrics['gIoU'] == pytest.approx(100 * np.mean(ious))
    assert metrics['cIoU'] == pytest.approx(100 * (9 + 2 + 0 + 0 + 8) / (10 + 10 + 10 + 5 + 20))


def test_ambiguity_rates_split_multi_and_single_target_expressions():
    metrics = grounding_metrics(RECORDS)
    assert metrics['ambiguity_flagged'] == 1.0
    assert metrics['false_ambiguity'] == 0.0


def test_right_per_kind_and_spatial_word():
    records = RECORDS + [_record(True, best_iou=0.9, kind='spatial', text='the smaller cube'),
                         _record(True, best_iou=0.1, kind='spatial', text='the tinier cube')]
    metrics = grounding_metrics(records)
    assert metrics['by_kind']['absent']['right'] == 0.5
    assert metrics['by_kind']['attribute']['queries'] == 3
    assert metrics['by_spatial_word'] == {
        'smaller': {'queries': 2, 'right': 0.5, 'found': 1.0, 'ambiguous': 0.0}}
    # the other words the default mode reads as the six count with them
    more = [_record(True, best_iou=0.9, kind='spatial', text=text)
            for text in ('the leftmost cube', 'the smallest cube', 'the lower ring')]
    words = grounding_metrics(records + more)['by_spatial_word']
    assert (words['left']['queries'], words['smaller']['queries'],
            words['bottom']['queries']) == (1, 3, 1)


def test_ece_of_perfectly_calibrated_bins_is_zero():
    confidences = [0.25] * 4 + [0.75] * 4
    right = [True, False, False, False, True, True, True, False]
    ece, table = calibration_bins(confidences, right)
    assert ece == pytest.approx(0.0)
    assert table[2]['count'] == 4 and table[2]['accuracy'] == 0.25


def test_ece_weighs_each_bin_by_its_answers_and_skips_nan():
    ece, table = calibration_bins([0.95, 0.95, 0.05, float('nan')], [False, True, True, True])
    # bin 9: conf 0.95, right 0.5 (2 answers); bin 0: conf 0.05, right 1.0 (1 answer)
    assert ece == pytest.approx((2 * 0.45 + 1 * 0.95) / 3)
    assert sum(row['count'] for row in table) == 3


def test_metrics_on_records_with_confidences():
    records = [_record(True, best_iou=0.9, confidence=0.9),
               _record(False, no_target=True, union=0, confidence=0.8, kind='absent')]
    metrics = grounding_metrics(records)
    assert metrics['answers_with_confidence'] == 2
    assert metrics['ECE'] == pytest.approx((0.1 + 0.2) / 2)


def test_evaluating_a_grefcoco_split_reports_the_generalised_metrics(tmp_path):
    write_grefcoco(tmp_path / 'data')
    settings = EvalSettings(dataset='grefcoco', split='val', data_root=tmp_path / 'data',
                            out_dir=tmp_path / 'out', progress=False)
    summary = evaluate(settings, HybridGLConfig(), StandInModel)
    grounding = summary['grounding']
    assert grounding['queries'] == 6
    # the stand-in always finds something: every no-target expression is answered wrongly
    assert grounding['N_acc'] == 0.0 and grounding['T_acc'] == 1.0
    records = [json.loads(line) for line in
               (tmp_path / 'out' / 'results.jsonl').read_text().splitlines()[1:]]
    empty = [r for r in records if r['no_target']]
    assert len(empty) == 2 and all(r['targets'] == 0 and r['gt_area'] == 0 for r in empty)
    assert {r['query_kind'] for r in records} == {'attribute', 'ambiguous', 'absent'}
    table = (tmp_path / 'out' / 'table.md').read_text()
    assert 'N-acc (%)' in table and 'right: absent (%)' in table
    # the paper's oIoU / mIoU are over the expressions with a target: a no-target one has no
    # mask to overlap (a right "not found" would count as IoU 0), N-acc and gIoU score it
    present = [r for r in records if not r['no_target']]
    assert summary['with_target'] == len(present) == 4
    assert summary['metrics']['guided']['oIoU'] == pytest.approx(
        100 * sum(r['inter'] for r in present) / sum(r['union'] for r in present))
    assert summary['metrics']['guided']['mIoU'] == pytest.approx(
        100 * np.mean([r['inter'] / r['union'] for r in present]))
    assert 'oIoU / mIoU over the 4 with a target (the 2 no-target ones' in table
    # each present target's size at the working size (the stand-in runs at the image's size)
    assert all(r['target_side'] is None for r in empty)
    assert all(r['target_side'] == pytest.approx(np.sqrt(r['gt_area']), abs=0.01)
               for r in present)
    assert sum(g['queries'] for g in grounding['by_target_size'].values()) == 2
    assert 'right: target side ' in table and 'Target side: the side of a square' in table


def _sized(side, found=True, best_iou=0.9, targets=1):
    return dict(_record(found, best_iou=best_iou if found else 0.0, targets=targets),
                target_side=side)


def test_answers_are_grouped_by_the_targets_side_at_the_working_size():
    records = [_sized(5.0), _sized(12.0, found=False), _sized(12.0), _sized(12.0, best_iou=0.1),
               _sized(16.0), _sized(200.0),
               _sized(40.0, targets=2),                                # several targets: out
               _record(False, no_target=True, kind='absent'),          # no target: out
               _record(True, best_iou=0.9)]                            # an older record: out
    groups = grounding_metrics(records)['by_target_size']
    assert list(groups) == ['<8', '8-16', '16-32', '>=128']            # smallest first
    assert sorted(['>=128', '16-32', '<8', '8-16'], key=size_group_key) == list(groups)
    assert groups['8-16'] == {'queries': 3, 'right': pytest.approx(1 / 3),
                              'found': pytest.approx(2 / 3), 'ambiguous': 0.0,
                              'confidence': None}
    assert groups['16-32']['queries'] == 1 and groups['<8']['right'] == 1.0
    confident = [dict(_sized(20.0), confidence=0.9), dict(_sized(20.0, found=False),
                                                          confidence=0.6), _sized(20.0)]
    assert grounding_metrics(confident)['by_target_size']['16-32']['confidence'] == \
        pytest.approx(0.75)                                    # over the answers that have one
    assert grounding_metrics(RECORDS)['by_target_size'] == {}


def test_the_target_side_is_measured_at_the_working_size():
    from types import SimpleNamespace

    from hybridgl_ros.eval.runner import target_side

    frame = SimpleNamespace(image_size=(200, 400), working_size=(100, 200))
    assert target_side(frame, 40 * 40) == pytest.approx(20.0)          # half the side
    assert target_side(frame, 0) is None


def test_a_record_keeps_every_decision_signal_the_calibration_reads():
    """``hybridgl calibrate`` reads the records' signals: the relation rule's verdict
    (relation_absent) among them, or a fit would count the present targets it rejects as kept."""
    from types import SimpleNamespace

    from hybridgl_ros.core.config import PRESENCE_SIGNALS
    from hybridgl_ros.eval.datasets import Query
    from hybridgl_ros.eval.grounding import SIGNAL_FIELDS, answer_fields

    decision = {'presence_x': [1.0] * PRESENCE_SIGNALS, 'confidence_x': [0.5] * 7,
                'tie_margin': 3.0, 'presence': 0.9, 'rule': 'absent', 'relation_fails': True,
                'relation_absent': True, 'choice': 0, 'method_choice': 1}
    seg = SimpleNamespace(mask=np.zeros((4, 4), bool), index=-1, confidence=0.2,
                          explanation=SimpleNamespace(decision=decision))
    query = Query('0:0', 'the cube left of the ball', '0', (), True, 'absent_relation')
    fields = answer_fields(seg, query, [], np.zeros((1, 4, 4), bool), (0, 0))
    assert set(fields['signals']) == set(SIGNAL_FIELDS)
    assert fields['signals']['relation_absent'] is True
    assert 'method_choice' not in fields['signals']
