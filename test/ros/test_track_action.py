"""The ~/track action over real DDS: the node in-process with the real pipeline on the embedded
demo models, a camera playing a generated clip, an rclpy ActionClient."""
import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from rclpy.node import Node
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState

from hybridgl_ros.action import TrackByText
from hybridgl_ros.demo.sequences import make_clip
from hybridgl_ros.msg import Segmentation
from ros_helpers import call, wait_for
from track_helpers import (
    DEPTH_M, GoalRun, camera, demo_segmenters, goal, mask_iou, track_client)

Result = TrackByText.Result
Feedback = TrackByText.Feedback
#: A clip of a moving target that the method finds on every frame ('the red ball').
CLIP = make_clip(6001, 7, frames=16)


@pytest.fixture(scope='module')
def segmenters():
    return demo_segmenters(prepare_delay_s=3.0)


@pytest.fixture
def tracking(harness, segmenters):
    """(harness, camera, action client) around the node with the real demo pipeline."""
    made = []

    def make(slow=False, clip=CLIP, frames=16, loop=True, **parameters):
        h = harness(segmenters[1] if slow else segmenters[0], max_image_age_s=5.0,
                    **parameters)
        cam = camera(h, clip, frames, loop=loop)
        made.append(cam)
        assert wait_for(lambda: h.node._image.get() is not None, timeout=10.0)
        return h, cam, track_client(h.client_node, h.namespace)

    yield make
    for cam in made:
        cam.stop()


def test_goal_answers_then_follows_the_object_frame_by_frame(tracking):
    h, cam, client = tracking()
    h.record('result', Segmentation)
    run = GoalRun(client, goal(CLIP.text, max_frames=6))
    assert run.wait_stage(Feedback.PREPARING)
    cam.play()                  # the camera moves on while the first answer runs
    status, result = run.result(timeout=120.0)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert result.reason == Result.DONE and result.frames_tracked == 6
    stages = run.stages()
    assert stages[:3] == [Feedback.PREPARING, Feedback.SCORING, Feedback.ANSWERED]
    assert stages[3:] == [Feedback.TRACKING] * 6
    tracked = [f for f in run.feedback if f.stage == Feedback.TRACKING]
    assert [f.frame_index for f in tracked] == [1, 2, 3, 4, 5, 6]
    ious = [mask_iou(f.segmentation, cam.truth(f.segmentation.header)) for f in tracked]
    assert min(ious) > 0.7, ious
    assert all(0.0 < f.tracking_quality <= 1.0 and f.segmentation.found for f in tracked)
    # the depth camera's flat table, 1.25 m away, under the first answer and every tracked mask
    answered = next(f for f in run.feedback if f.stage == Feedback.ANSWERED)
    assert answered.segmentation.has_3d, answered.segmentation.message
    assert abs(answered.segmentation.centroid_3d.point.z - DEPTH_M) < 1e-3
    assert all(f.segmentation.has_3d for f in tracked)
    assert all(abs(f.segmentation.centroid_3d.point.z - DEPTH_M) < 1e-3 for f in tracked)
    stamps = [f.segmentation.header.stamp for f in tracked]
    assert len({(s.sec, s.nanosec) for s in stamps}) == 6     # one per new camera frame
    assert result.last.found and result.last.header.stamp == stamps[-1]
    assert result.rate_hz > 0.0 and result.tracking_quality > 0.0
    assert wait_for(lambda: len(h.received['result']) >= 7)   # the answer + every tracked frame


def test_goal_without_tracking_ends_after_the_first_answer(tracking):
    h, cam, client = tracking()
    status, result = GoalRun(client, goal(CLIP.text, keep_tracking=False)).result(120.0)
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert result.reason == Result.DONE and result.frames_tracked == 0
    assert result.last.found and mask_iou(result.last, cam.truth(result.last.header)) > 0.7
    assert result.message.startswith('done: found')


def test_cancel_during_the_first_answer_ends_the_goal_canceled(tracking):
    h, cam, client = tracking(slow=True)
    run = GoalRun(client, goal(CLIP.text))
    assert run.wait_stage(Feedback.PREPARING, timeout=30.0)
    start = time.monotonic()
    assert run.cancel().return_code == 0
    status, result = run.result(timeout=60.0)
    assert status == GoalStatus.STATUS_CANCELED and result.reason == Result.CANCELED
    assert Feedback.ANSWERED not in run.stages() and not result.last.found
    assert 'canceled' in result.message
    # the proposer's 3 s sleep is the stage the cancel waits for, nothing after it
    assert time.monotonic() - start < 30.0


def test_cancel_while_tracking_ends_the_goal_canceled(tracking):
    h, cam, client = tracking()
    run = GoalRun(client, goal(CLIP.text))
    assert run.wait_stage(Feedback.ANSWERED, timeout=120.0)
    cam.play()
    assert run.wait_stage(Feedback.TRACKING, count=3, timeout=120.0)
    run.cancel()
    status, result = run.result(timeout=30.0)
    assert status == GoalStatus.STATUS_CANCELED and result.reason == Result.CANCELED
    assert result.frames_tracked >= 3 and result.last.found


def test_second_goal_waits_its_turn_and_a_third_is_refused_with_a_reason(tracking):
    h, cam, client = tracking(track_queue_size=1)
    first = GoalRun(client, goal(CLIP.text, max_frames=4))
    assert first.wait_stage(Feedback.PREPARING)
    second = GoalRun(client, goal(CLIP.text, keep_tracking=False))
    third = GoalRun(client, goal(CLIP.text, keep_tracking=False))
    status, refused = third.result(timeout=30.0)
    assert status == GoalStatus.STATUS_ABORTED and refused.reason == Result.REFUSED
    assert 'track_queue_size' in refused.message
    assert second.feedback[0].stage == Feedback.QUEUED
    assert second.feedback[0].queue_position == 1
    assert first.result(timeout=120.0)[1].reason == Result.DONE
    status, answered = second.result(timeout=120.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and answered.reason == Result.DONE
    assert answered.last.found


def test_waiting_goal_canceled_ends_at_once(tracking):
    h, cam, client = tracking()
    first = GoalRun(client, goal(CLIP.text))
    assert first.wait_stage(Feedback.TRACKING, timeout=120.0)
    second = GoalRun(client, goal(CLIP.text))
    assert wait_for(lambda: second.stages() == [Feedback.QUEUED])
    second.cancel()
    status, result = second.result(timeout=10.0)
    assert status == GoalStatus.STATUS_CANCELED and result.reason == Result.CANCELED
    assert first.cancel().return_code == 0
    assert first.result(timeout=30.0)[1].reason == Result.CANCELED


def test_deactivate_ends_the_goal_and_the_node_serves_again_after_activate(tracking):
    h, cam, client = tracking()
    run = GoalRun(client, goal(CLIP.text))
    assert run.wait_stage(Feedback.TRACKING, timeout=120.0)
    lifecycle = h.client_node.create_client(ChangeState,
                                            f'{h.namespace}/hybridgl_node/change_state')
    assert call(lifecycle, ChangeState.Request(
        transition=Transition(id=Transition.TRANSITION_DEACTIVATE))).success
    status, result = run.result(timeout=30.0)
    assert status == GoalStatus.STATUS_ABORTED and result.reason == Result.FAILED
    assert 'deactivated' in result.message
    status, refused = GoalRun(client, goal(CLIP.text)).result(timeout=30.0)
    assert refused.reason == Result.FAILED and 'not active' in refused.message
    assert call(lifecycle, ChangeState.Request(
        transition=Transition(id=Transition.TRANSITION_ACTIVATE))).success
    status, result = GoalRun(client, goal(CLIP.text, max_frames=2)).result(timeout=120.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.frames_tracked == 2


def test_object_leaving_the_view_ends_the_goal_object_lost(tracking):
    clip = make_clip(6001, 3, frames=24)           # the camera pans the target out at frame 14
    h, cam, client = tracking(clip=clip, frames=24, loop=False)
    run = GoalRun(client, goal(clip.text))
    assert run.wait_stage(Feedback.ANSWERED, timeout=120.0)
    cam.play()
    status, result = run.result(timeout=180.0)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert result.reason == Result.OBJECT_LOST, result.message
    assert not result.last.found and 'lost' in result.message


def test_max_duration_ends_the_goal_timed_out(tracking):
    h, cam, client = tracking()
    status, result = GoalRun(client, goal(CLIP.text, max_duration_s=0.5)).result(120.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.reason == Result.TIMED_OUT
    assert 'max_duration_s' in result.message


def test_empty_text_fails_with_the_reason(tracking):
    h, cam, client = tracking()
    status, result = GoalRun(client, goal('  ')).result(timeout=30.0)
    assert status == GoalStatus.STATUS_ABORTED and result.reason == Result.FAILED
    assert 'text is empty' in result.message
    assert np.asarray(result.last.mask.data).size == 0


def test_a_goal_whose_client_is_gone_ends_and_frees_the_action(tracking, spin, ros_context):
    """A client that leaves without canceling (destroyed here; a killed one is dropped by DDS
    when its lease runs out): its goal ends after track_client_timeout_s with no reader of
    the feedback that was there as it came in, and a client that comes later gets the action
    (before, the goal tracked for nobody and every later goal waited or was refused)."""
    h, cam, first = tracking(track_client_timeout_s=1.0)
    first.destroy()
    gone_node = Node('gone_client', context=ros_context, namespace=h.namespace)
    spinner = spin(gone_node)
    gone = track_client(gone_node, h.namespace)
    run = GoalRun(gone, goal(CLIP.text))
    assert run.wait_stage(Feedback.ANSWERED, timeout=120.0)
    cam.play()
    assert run.wait_stage(Feedback.TRACKING, count=2, timeout=120.0)
    time.sleep(2.5)                  # past the goal's first seconds: a later client is no reader
    gone.destroy()
    spinner.stop()
    gone_node.destroy_node()
    late = track_client(h.client_node, h.namespace)
    status, result = GoalRun(late, goal(CLIP.text, keep_tracking=False)).result(timeout=120.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.reason == Result.DONE


def test_a_goal_without_a_valid_max_duration_fails_with_the_reason(tracking):
    h, cam, client = tracking()
    status, result = GoalRun(client, goal(CLIP.text, max_duration_s=float('nan'))).result(30.0)
    assert status == GoalStatus.STATUS_ABORTED and result.reason == Result.FAILED
    assert 'max_duration_s must be >= 0' in result.message
