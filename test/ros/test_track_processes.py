"""~/track with the installed node as its own process: stopped (SIGINT) mid-track, the goal
answered, the process gone cleanly; started again, it serves a new goal."""
import time
import uuid

from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from hybridgl_ros.action import TrackByText
from hybridgl_ros.demo.sequences import make_clip
from ros_helpers import Spinner, ros_executable, start_process, stop_process, wait_for
from track_helpers import ClipCamera, GoalRun, goal, mask_iou, track_client

Feedback = TrackByText.Feedback


def _node(namespace, env, log):
    return start_process(
        [ros_executable('hybridgl_node'), '--ros-args', '-r', f'__ns:={namespace}',
         '-p', 'models.device:=cpu', '-p', 'models.torch_threads:=1',
         '-p', 'tracking.box_prompt:=false', '-p', 'max_image_age_s:=5.0'], env, log)


STARTING = ('loading', 'not configured', 'not active', 'no image received yet')


def _goal_once_ready(client, request, timeout=180.0):
    """Sends the goal again while the node answers that it is still starting; returns the run
    once the goal got its first answer (or ended for another reason)."""
    deadline = time.monotonic() + timeout
    while True:
        run = GoalRun(client, request)
        run.wait_stage(Feedback.ANSWERED, timeout=timeout)
        message = run.ended()
        if not any(s in message for s in STARTING) or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def test_node_stopped_while_tracking_answers_the_goal_exits_and_serves_again_when_restarted(
        ros_context, ros_env, tmp_path):
    clip = make_clip(6001, 7, frames=16)                   # 'the red ball', moving
    namespace = f'/k{uuid.uuid4().hex[:8]}'
    client_node = Node('track_client', context=ros_context, namespace=namespace)
    publisher = client_node.create_publisher(Image, f'{namespace}/image', QoSProfile(depth=2))
    spinner = Spinner(ros_context, client_node)
    cam = ClipCamera(publisher, clip, 16)
    node = _node(namespace, ros_env, tmp_path / 'node1.log')
    try:
        client = track_client(client_node, namespace, timeout=60.0)
        cam.start(timeout=180.0)
        run = _goal_once_ready(client, goal(clip.text))
        assert Feedback.ANSWERED in run.stages(), (
            run.ended(), (tmp_path / 'node1.log').read_text()[-3000:])
        cam.play()
        assert run.wait_stage(Feedback.TRACKING, count=3, timeout=60.0)
        assert stop_process(node, timeout=20.0) == 0, (tmp_path / 'node1.log').read_text()
        status, result = run.result(timeout=5.0)   # the goal was answered before the exit
        assert result.reason == TrackByText.Result.FAILED
        assert 'shutting down' in result.message and result.frames_tracked >= 3
        assert wait_for(lambda: not client.server_is_ready(), timeout=20.0)

        node = _node(namespace, ros_env, tmp_path / 'node2.log')
        assert client.wait_for_server(timeout_sec=60.0)
        again = _goal_once_ready(client, goal(clip.text, max_frames=3))
        status, result = again.result(timeout=180.0)
        assert result.reason == TrackByText.Result.DONE, result.message
        tracked = [f for f in again.feedback if f.stage == Feedback.TRACKING]
        assert len(tracked) == 3
        assert all(mask_iou(f.segmentation, cam.truth(f.segmentation.header)) > 0.7
                   for f in tracked)
    finally:
        cam.stop()
        spinner.stop()
        client_node.destroy_node()
        rc = stop_process(node, timeout=20.0)
    assert rc == 0, (tmp_path / 'node2.log').read_text()[-3000:]
