"""Generated clips for tracking: deterministic, exact visible masks, the kinds do what they say."""
import json

import numpy as np
import pytest

from hybridgl_ros.demo.clip_files import read_clip_masks, write_clips
from hybridgl_ros.demo.scenes import HEIGHT_PX, WIDTH_PX
from hybridgl_ros.demo.sequences import (
    CLIP_KINDS, LEAVE_TAIL_FRAMES, make_clip, make_clips, visible_masks)


def test_same_seed_and_index_give_the_same_frames():
    a, b = make_clip(6001, 3, frames=16), make_clip(6001, 3, frames=16)
    assert a == b
    for t in (0, 9):
        fa, fb = a.frame(t), b.frame(t)
        assert np.array_equal(fa.image_rgb, fb.image_rgb) and np.array_equal(fa.masks, fb.masks)
    assert not np.array_equal(a.frame(0).image_rgb, make_clip(6001, 4).frame(0).image_rgb)


def test_kinds_cycle_and_every_clip_names_its_target():
    clips = make_clips(count=len(CLIP_KINDS), frames=16)
    assert [c.kind for c in clips] == list(CLIP_KINDS)
    for clip in clips:
        target = clip.movers[clip.target].obj
        assert clip.text.startswith(f'the {target.colour} {target.shape}')
        assert clip.frame(0).visible_fraction[clip.target] > 0.97


def test_visible_masks_are_disjoint_and_the_front_object_wins():
    shapes = np.zeros((2, 4, 4), bool)
    shapes[0, :, :3] = True
    shapes[1, :, 2:] = True
    visible = visible_masks(shapes)
    assert visible[1].sum() == 8 and visible[0].sum() == 8 and not (visible[0] & visible[1]).any()


def test_frame_masks_match_the_picture_size_and_never_overlap():
    frame = make_clip(6001, 4, 'lookalike', frames=16).frame(8)
    assert frame.image_rgb.shape == (HEIGHT_PX, WIDTH_PX, 3)
    assert frame.masks.shape[1:] == (HEIGHT_PX, WIDTH_PX)
    assert frame.masks.sum(axis=0).max() == 1
    assert np.all((frame.visible_fraction >= 0) & (frame.visible_fraction <= 1.05))


def test_target_leaves_the_view_and_stays_out_for_the_tail():
    clip = make_clip(6001, 3, 'leave', frames=20)
    fractions = [clip.frame(t).visible_fraction[clip.target] for t in range(20)]
    gone = 20 - LEAVE_TAIL_FRAMES
    assert fractions[0] > 0.97 and fractions[gone - 1] > 0.0
    assert all(f == 0.0 for f in fractions[gone:])


@pytest.mark.parametrize('index, in_front', [(4, False), (9, True)])
def test_lookalike_is_the_target_twin_and_passes_close_by(index, in_front):
    clip = make_clip(6001, index, 'lookalike', frames=20)
    target, twin = clip.movers[clip.target].obj, clip.movers[clip.lookalike].obj
    assert (twin.shape, twin.colour, twin.size) == (target.shape, target.colour, target.size)
    gaps = []
    for t in range(20):
        a, b = clip.view_objects(t)[clip.target], clip.view_objects(t)[clip.lookalike]
        gaps.append(np.hypot(a.center_xy[0] - b.center_xy[0], a.center_xy[1] - b.center_xy[1])
                    - a.radius_px - b.radius_px)
    assert min(gaps) < 0 < gaps[0]                       # apart first, overlapping later
    assert (clip.lookalike > clip.target) == in_front     # later movers are in front
    hidden = 1.0 - min(clip.frame(t).visible_fraction[clip.target] for t in range(20))
    assert (hidden > 0.05) == in_front and hidden < 0.4
    side = 'left' if clip.view_objects(0)[clip.target].center_xy[0] < \
        clip.view_objects(0)[clip.lookalike].center_xy[0] else 'right'
    assert clip.text.endswith(f'on the {side}')


def test_unknown_kind_and_too_short_clips_are_refused():
    with pytest.raises(ValueError):
        make_clip(6001, 0, 'spin')
    with pytest.raises(ValueError):
        make_clip(6001, 0, 'leave', frames=8)


def test_make_scenes_sequence_writes_frames_masks_and_index(tmp_path):
    summary = write_clips(tmp_path, count=2, seed=6001, frames=5)
    assert summary['clips'] == 2
    index = json.loads((tmp_path / 'clips.json').read_text())
    assert [e['name'] for e in index] == ['pan_000', 'zoom_001']
    folder = tmp_path / 'pan_000'
    assert len(list(folder.glob('frame_*.png'))) == 5
    visible, fractions = read_clip_masks(folder)
    clip = make_clip(6001, 0, frames=5)
    assert np.array_equal(visible[3], clip.frame(3).masks)
    assert fractions.shape == (5, len(clip.movers))
