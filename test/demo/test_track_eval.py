"""The tracking evaluation's metrics (on made-up frame records) and the eval-track command."""
import argparse
import json

from hybridgl_ros.demo.track_eval import (
    ClipRecord, FrameRecord, format_summary, register, summarize)


def _frames(rows):
    """FrameRecords from (iou, visible, other_iou) rows, t = 1, 2, ..."""
    return [FrameRecord(t, 'tracking', iou, visible, other, 0, 0.9, 50.0)
            for t, (iou, visible, other) in enumerate(rows, start=1)]


def test_mean_iou_counts_only_frames_where_the_target_is_visible():
    record = ClipRecord('a', 'pan', 'x', 'truth', 0.9,
                        _frames([(0.9, 1.0, 0), (0.7, 0.6, 0), (0.0, 0.2, 0), (0.0, 0.0, 0)]))
    assert record.visible_ious() == [0.9, 0.7]
    assert abs(record.mean_iou - 0.8) < 1e-9


def test_frames_to_loss_runs_from_the_first_frame_without_the_target():
    record = ClipRecord('a', 'leave', 'x', 'truth', 0.9, lost_at=12, gone_at=10)
    assert record.frames_to_loss == 2
    early = ClipRecord('b', 'leave', 'x', 'truth', 0.9, lost_at=9, gone_at=10)
    assert early.frames_to_loss == -1
    never = ClipRecord('c', 'leave', 'x', 'truth', 0.9, _frames([(0, 0, 0)] * 15), gone_at=10)
    assert never.frames_to_loss == 6          # past the end: a failure to report the loss
    assert ClipRecord('d', 'pan', 'x', 'truth', 0.9).frames_to_loss is None


def test_a_switch_is_counted_once_per_move_onto_another_object():
    record = ClipRecord('a', 'lookalike', 'x', 'truth', 0.9, _frames(
        [(0.9, 1, 0.0), (0.2, 1, 0.6), (0.1, 1, 0.7), (0.9, 1, 0.0), (0.3, 1, 0.5)]))
    assert record.switches == 2
    wrong_start = ClipRecord('b', 'lookalike', 'x', 'method', 0.0, _frames([(0.0, 1, 0.9)]))
    assert wrong_start.switches == 0          # the method's miss, not the tracker's


def test_premature_loss_is_a_loss_while_the_target_is_visible():
    frames = _frames([(0.9, 1.0, 0), (0.0, 1.0, 0)])
    assert ClipRecord('a', 'pan', 'x', 'truth', 0.9, frames, lost_at=2).premature_loss
    assert not ClipRecord('b', 'pan', 'x', 'truth', 0.9, frames).premature_loss


def test_summary_reports_every_figure_against_its_target():
    records = [ClipRecord('a', 'pan', 'x', 'truth', 0.9, _frames([(0.9, 1, 0)] * 3)),
               ClipRecord('b', 'leave', 'y', 'truth', 0.9, _frames([(0.8, 1, 0)] * 3),
                          lost_at=3, gone_at=3)]
    summary = summarize(records)
    assert summary['clips'] == 2 and summary['visible_frames'] == 6
    assert abs(summary['mean_iou'] - 0.85) < 1e-9
    assert summary['frames_to_loss'] == [0] and summary['loss_within_target'] == 1
    assert summary['switches'] == 0 and abs(summary['rate_hz'] - 20.0) < 1e-9
    text = format_summary(summary)
    assert 'target >= 0.8' in text and 'target <= 5' in text and 'frames/s' in text


def test_eval_track_command_runs_clips_and_writes_its_figures(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog='hybridgl')
    register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['eval-track', '--count', '2', '--frames', '6', '--init', 'truth',
                              '--kinds', 'moving,pan', '--out', str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert 'moving_000' in out and 'pan_001' in out and 'mean IoU' in out
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['clips'] == 2 and summary['tracked_frames'] == 10
    assert summary['mean_iou'] > 0.8
    assert len((tmp_path / 'frames.jsonl').read_text().splitlines()) == 10
