"""~/track with the installed node as its own process: stopped mid-track, started again."""
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


def _goal_once_ready(client, request, timeout=180.0):
    """Sends the goal again while the node answers that it is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        run = GoalRun(client, request)
        status, result = run.result(timeout=timeout)
        starting = ('loading', 'not configured', 'not active', 'no image received yet')
        if not any(s in result.message for s in starting) or time.monotonic() > deadline:
            return run, result
        time.sleep(0.5)


def test_node_stopped_while_tracking_exits_cleanly_and_serves_again_when_restarted(
        ros_context, ros_env, tmp_path):
    clip = make_clip(6001, 7, frames=16)                   # 'the red ball', moving
    namespace = f'/k{uuid.uuid4().hex[:8]}'
    client_node = Node('track_client', context=ros_context, namespace=namespace)
    publisher = client_node.create_publisher(Image, f'{namespace}/image', QoSProfile(depth=2))
    spinner = Spinner(ros_context, client_node)
    node = _node(namespace, ros_env, tmp_path / 'node1.log')
    cam = ClipCamera(publisher, clip, 16)
    try:
        client = track_client(client_node, namespace, timeout=60.0)
        cam.start(timeout=180.0)
        run = GoalRun(client, goal(clip.text))
        assert run.wait_stage(Feedback.ANSWERED, timeout=180.0), (
            (tmp_path / 'node1.log').read_text()[-3000:])
        cam.play()
        assert run.wait_stage(Feedback.TRACKING, count=3, timeout=60.0)
        assert stop_process(node, timeout=20.0) == 0, (tmp_path / 'node1.log').read_text()
        assert wait_for(lambda: not client.server_is_ready(), timeout=20.0)

        node = _node(namespace, ros_env, tmp_path / 'node2.log')
        assert client.wait_for_server(timeout_sec=60.0)
        again, result = _goal_once_ready(client, goal(clip.text, max_frames=3))
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
