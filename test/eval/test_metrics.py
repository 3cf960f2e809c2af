"""oIoU and mIoU on masks whose I and U are known by hand (spec §11)."""
import math

import numpy as np
import pytest

from hybridgl_ros.eval.metrics import intersection_union, scores, summarize_records


def _mask(cells, shape=(4, 5)):
    mask = np.zeros(shape, bool)
    for y, x in cells:
        mask[y, x] = True
    return mask


def test_intersection_and_union_count_pixels():
    pred = _mask([(0, 0), (0, 1), (1, 1)])
    gt = _mask([(0, 1), (1, 1), (2, 2), (3, 4)])
    assert intersection_union(pred, gt) == (2, 5)


def test_empty_prediction_and_empty_ground_truth_give_zero_union():
    empty = np.zeros((4, 5), bool)
    assert intersection_union(empty, empty) == (0, 0)


def test_masks_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match='shape'):
        intersection_union(np.zeros((4, 5), bool), np.zeros((5, 4), bool))


def test_oiou_is_total_intersection_over_total_union_and_miou_the_mean_ratio():
    result = scores([(2, 4), (0, 0), (3, 3), (1, 10)])
    assert math.isclose(result['oIoU'], 100 * 6 / 17)
    assert math.isclose(result['mIoU'], 100 * (0.5 + 0.0 + 1.0 + 0.1) / 4)
    assert result['count'] == 4


def test_a_zero_union_counts_as_zero_iou_in_the_mean():
    assert scores([(0, 0)]) == {'oIoU': 0.0, 'mIoU': 0.0, 'count': 1}
    assert scores([]) == {'oIoU': 0.0, 'mIoU': 0.0, 'count': 0}


def _record(status='ok', **fields):
    return {'status': status, 'query_id': str(len(fields)), **fields}


def test_summary_scores_pure_and_guided_separately_and_leaves_out_skipped_queries():
    records = [
        _record(inter=4, union=4, inter_pure=1, union_pure=4, query_ms=2.0, frame_ms=10.0,
                cache='off'),
        _record(inter=0, union=6, inter_pure=3, union_pure=3, query_ms=4.0, frame_ms=None),
        _record(status='skipped', reason='empty ground truth'),
        _record(status='skipped', reason='unreadable image')]
    summary = summarize_records(records)
    assert summary['metrics']['guided'] == {'oIoU': 40.0, 'mIoU': 50.0}
    assert math.isclose(summary['metrics']['pure']['oIoU'], 100 * 4 / 7)
    assert math.isclose(summary['metrics']['pure']['mIoU'], 62.5)
    assert (summary['queries'], summary['evaluated'], summary['skipped']) == (4, 2, 2)
    assert summary['skipped_by_reason'] == {'empty ground truth': 1, 'unreadable image': 1}
    assert summary['timing']['ms_per_query'] == 8.0


def test_no_target_expressions_are_left_out_of_oiou_and_miou():
    # a right "not found" (empty mask, U = 0) and a wrong answer to a no-target expression
    records = [_record(inter=4, union=4, inter_pure=2, union_pure=4),
               _record(inter=0, union=0, inter_pure=0, union_pure=5, no_target=True),
               _record(inter=0, union=7, inter_pure=0, union_pure=7, no_target=True)]
    summary = summarize_records(records)
    assert summary['metrics']['guided'] == {'oIoU': 100.0, 'mIoU': 100.0}
    assert summary['metrics']['pure'] == {'oIoU': 50.0, 'mIoU': 50.0}
    assert (summary['evaluated'], summary['with_target']) == (3, 1)
