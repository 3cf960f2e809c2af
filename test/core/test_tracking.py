"""The tracker and the follower on generated clips, with the embedded demo models (real SAM,
real hybrid CLIP features, real spaCy)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from hybridgl_ros.core.cancel import Cancelled, CancelToken
from hybridgl_ros.core.errors import ConfigError, InvalidInputError
from hybridgl_ros.core.follow import SEARCHING, Follower
from hybridgl_ros.core.motion import mask_iou
from hybridgl_ros.core.tracking import LOST, TRACKING, UNCERTAIN, Tracker
from hybridgl_ros.demo.sequences import make_clip
from hybridgl_ros.demo.track_eval import TARGET_FRAMES_TO_LOSS, run_clip, truth_choice


@pytest.fixture(scope='module')
def segmenter():
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.demo import demo_config

    return HybridGL.from_config(demo_config())


@pytest.fixture
def follower(segmenter):
    return Follower(segmenter)


def _tracker(segmenter, **changes):
    return Tracker.for_segmenter(segmenter, replace(segmenter.config.tracking, **changes))


@pytest.mark.parametrize('kind, index', [('pan', 0), ('zoom', 1), ('moving', 2)])
def test_tracker_keeps_the_object_while_camera_and_object_move(follower, kind, index):
    clip = make_clip(6001, index, kind, frames=12)
    record = run_clip(follower, clip, init='truth')
    assert [f.status for f in record.frames] == [TRACKING] * 11
    assert record.mean_iou >= 0.85 and min(f.iou for f in record.frames) >= 0.8
    assert record.switches == 0


def test_object_leaving_the_view_is_reported_lost_within_five_frames(follower):
    clip = make_clip(6001, 3, 'leave', frames=16)
    record = run_clip(follower, clip, init='truth')
    assert record.gone_at == 6 and record.lost_at is not None
    assert record.frames_to_loss <= TARGET_FRAMES_TO_LOSS
    assert not record.premature_loss
    assert all(f.status == 'ended' for f in record.frames if f.t > record.lost_at)


@pytest.mark.parametrize('index', [4, 9])      # behind the object, in front of it
def test_lookalike_passing_by_does_not_take_the_objects_place(follower, index):
    clip = make_clip(6001, index, 'lookalike', frames=20)
    assert (clip.lookalike > clip.target) == (index == 9)
    record = run_clip(follower, clip, init='truth')
    assert record.switches == 0 and record.lost_at is None
    assert min(f.iou for f in record.frames) >= 0.7
    assert max(f.other_iou for f in record.frames) < 0.3


def test_tracking_starts_from_the_method_answer(follower):
    clip = make_clip(6001, 7, frames=6)
    record = run_clip(follower, clip, init='method')
    assert record.first_iou >= 0.8 and record.mean_iou >= 0.85


def test_object_gone_from_its_place_is_uncertain_then_lost(segmenter):
    clip = make_clip(6001, 7, frames=16)
    first = clip.frame(0)
    truth = first.masks[clip.target]
    hole = cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8))
    empty_table = cv2.inpaint(first.image_rgb, hole, 7, cv2.INPAINT_TELEA)
    tracker = _tracker(segmenter, lost_after=3)
    tracker.start(first.image_rgb, truth_choice(clip.text, truth))
    updates = [tracker.update(empty_table) for _ in range(3)]
    assert [u.status for u in updates] == [UNCERTAIN, UNCERTAIN, LOST]
    assert 'look differs' in updates[0].message and updates[0].quality < 0.9
    assert not updates[-1].segmentation.found and updates[-1].quality == 0.0
    assert not tracker.active
    with pytest.raises(InvalidInputError):
        tracker.update(empty_table)


def test_a_tracked_frame_has_no_confidence_and_not_the_first_answers_alternatives(segmenter):
    from hybridgl_ros.core.types import Alternative

    clip = make_clip(6001, 7, frames=6)
    first, second = clip.frame(0), clip.frame(1)
    truth = first.masks[clip.target]
    choice = replace(truth_choice(clip.text, truth), confidence=0.9, ambiguous=True,
                     alternatives=(Alternative(3, (1, 2, 3, 4), (2, 3), 0.5, 0.4),))
    tracker = _tracker(segmenter)
    tracker.start(first.image_rgb, choice)
    tracked = tracker.update(second.image_rgb).segmentation
    assert tracked.found and np.isnan(tracked.confidence)
    assert not tracked.ambiguous and tracked.alternatives == ()


def test_update_stops_on_a_canceled_token_and_keeps_the_track(segmenter):
    clip = make_clip(6001, 7, frames=16)
    tracker = _tracker(segmenter)
    first = clip.frame(0)
    tracker.start(first.image_rgb, truth_choice(clip.text, first.masks[clip.target]))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        tracker.update(clip.frame(1).image_rgb, token)
    assert tracker.active


def test_catch_up_follows_the_frames_a_slow_answer_let_pass(follower):
    clip = make_clip(6001, 2, 'moving', frames=12)
    frames = [clip.frame(t) for t in range(12)]
    follower.follow(frames[0].image_rgb, truth_choice(clip.text, frames[0].masks[clip.target]))
    assert follower.catch_up([f.image_rgb for f in frames[1:11]]) == 10
    update = follower.next(frames[11].image_rgb)
    assert update.status == TRACKING
    assert mask_iou(update.segmentation.mask, frames[11].masks[clip.target]) >= 0.8


def test_redetect_finds_the_object_again_after_a_jump(segmenter):
    config = replace(segmenter.config.tracking, on_lost='redetect', lost_after=2)
    follower = Follower(segmenter, Tracker.for_segmenter(segmenter, config))
    clip = make_clip(6001, 7, frames=16)
    first = clip.frame(0)
    assert follower.first(first.image_rgb, clip.text).found
    jumped, truth = _shifted(first.image_rgb, first.masks[clip.target])
    statuses = [follower.next(jumped).status for _ in range(2)]
    assert statuses == [UNCERTAIN, SEARCHING]
    found = follower.next(jumped)
    assert found.status == TRACKING and found.message == 'found again by the method'
    assert mask_iou(found.segmentation.mask, truth) >= 0.8
    after = follower.next(jumped)
    assert after.status == TRACKING and mask_iou(after.segmentation.mask, truth) >= 0.8


def test_redetect_does_not_accept_an_object_that_looks_different(segmenter):
    config = replace(segmenter.config.tracking, on_lost='redetect', redetect_attempts=2)
    follower = Follower(segmenter, Tracker.for_segmenter(segmenter, config))
    clip = make_clip(6001, 3, 'leave', frames=16)
    frames = [clip.frame(t) for t in range(16)]
    follower.follow(frames[0].image_rgb, truth_choice(clip.text, frames[0].masks[clip.target]))
    statuses = [follower.next(f.image_rgb).status for f in frames[1:9]]
    assert statuses[-3:] == [SEARCHING, SEARCHING, LOST], statuses
    assert not follower.active


def test_start_needs_a_found_mask_of_the_same_image(segmenter):
    clip = make_clip(6001, 7, frames=16)
    image = clip.frame(0).image_rgb
    tracker = _tracker(segmenter)
    empty = replace(truth_choice('x', clip.frame(0).masks[0]), found=False)
    with pytest.raises(InvalidInputError):
        tracker.start(image, empty)
    with pytest.raises(InvalidInputError):
        tracker.start(image[:100], truth_choice('x', clip.frame(0).masks[0]))


def test_bad_tracking_settings_are_config_errors():
    from hybridgl_ros.core.config import HybridGLConfig

    for flat in ({'tracking.on_lost': 'ignore'}, {'tracking.lost_after': 0},
                 {'tracking.max_growth': 0.9}, {'tracking.search_margin': -0.1}):
        with pytest.raises(ConfigError):
            HybridGLConfig.from_flat(flat)


def _shifted(image, mask):
    """The picture moved so that the object lands far from where it was (still in view)."""
    ys, xs = np.nonzero(mask)
    dx = -220 if xs.mean() > image.shape[1] / 2 else 220
    dy = -120 if ys.mean() > image.shape[0] / 2 else 120
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (image.shape[1], image.shape[0])
    moved = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT)
    truth = cv2.warpAffine(mask.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST)
    return moved, truth.astype(bool)
