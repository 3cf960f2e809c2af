"""``hybridgl eval --plots``: the reliability diagram and the answers by target size, as PNGs
read back, and drawn from the run's own summary."""
import argparse

import cv2
import numpy as np
from eval_data import write_grefcoco

from hybridgl_ros.eval.cli import register, run_eval
from hybridgl_ros.eval.plots import reliability_diagram, size_diagram

BLUE = (66, 133, 244)
RED = (234, 67, 53)


def _column_shares(image, x):
    """Share of blue and red pixels in one column of the plotting area (y 64-496)."""
    column = image[64:496, x]
    blue = np.all(column == BLUE, axis=1).sum()
    red = np.all(column == RED, axis=1).sum()
    return blue / len(column), red / len(column)


def test_size_bars_are_split_into_right_another_object_and_not_found():
    groups = {'8-16': {'queries': 10, 'right': 0.5, 'found': 0.7, 'ambiguous': 0.0,
                       'confidence': None},
              '32-64': {'queries': 30, 'right': 1.0, 'found': 1.0, 'ambiguous': 0.0,
                        'confidence': None}}
    image = size_diagram(groups, 'test')
    assert image.dtype == np.uint8 and image.shape[2] == 3
    # the first bar: half of its height right (blue), 30 % not found (red); the second all blue
    blue, red = _column_shares(image, 64 + 200)
    assert abs(blue - 0.5) < 0.03 and abs(red - 0.3) < 0.03
    blue, red = _column_shares(image, image.shape[1] - 64 - 50)
    assert blue > 0.97 and red == 0
    # a summary read back from JSON has its groups in key order: the bars are by size still
    blue_first = _column_shares(size_diagram(dict(reversed(list(groups.items()))), 'test'),
                                64 + 200)[0]
    assert abs(blue_first - 0.5) < 0.03
    # the mean confidence is a black line across its bar
    groups['8-16']['confidence'] = 0.8
    column = size_diagram(groups, 'test')[64:496, 64 + 200]
    black = np.flatnonzero(np.all(column == 0, axis=1))
    assert len(black) and abs((496 - 64 - black.mean()) / 432 - 0.8) < 0.02


def test_reliability_bars_reach_each_bins_accuracy():
    bins = [{'low': b / 10, 'high': (b + 1) / 10, 'count': 0, 'confidence': None,
             'accuracy': None} for b in range(10)]
    bins[9].update(count=20, confidence=0.95, accuracy=0.5)
    image = reliability_diagram(bins, 0.45, 'test')
    column = image[64:496, 64 + int(9.5 * (560 - 128) / 10), :]
    assert abs(np.all(column == BLUE, axis=1).mean() - 0.5) < 0.03


def test_eval_plots_writes_both_pictures(tmp_path, stand_in, capsys):
    write_grefcoco(tmp_path / 'data')
    parser = argparse.ArgumentParser(prog='hybridgl')
    register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['eval', '--dataset', 'grefcoco', '--split', 'val', '--data-root',
                              str(tmp_path / 'data'), '--out', str(tmp_path / 'out'),
                              '--plots', '--no-progress'])
    assert run_eval(args, model_factory=stand_in) == 0
    out = capsys.readouterr().out
    assert f'answers by target size: {tmp_path / "out" / "by_size.png"}' in out
    picture = cv2.imread(str(tmp_path / 'out' / 'by_size.png'))
    assert picture is not None and picture.shape[:2] == (600, 640)
