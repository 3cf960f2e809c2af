"""Separate processes over DDS: the node, an image publisher, and this test as the client."""
import statistics
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
from rclpy.node import Node

from hybridgl_ros.ros.conversions import image_to_numpy
from hybridgl_ros.srv import SegmentByText
from ros_helpers import (
    Spinner, call, ros_executable, start_process, stop_process, wait_for)
from small_segmenter import scene_rgb

SMALL_NODE = Path(__file__).resolve().parent / 'small_node.py'
H, W = 192, 256  # the scene at twice the size: the red square covers rows 60..119, cols 30..89


def _write_frames(folder: Path, count: int = 3) -> Path:
    folder.mkdir()
    for i in range(count):
        bgr = cv2.cvtColor(scene_rgb(H, W), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f'frame_{i:03d}.png'), bgr)
    return folder


def _segment_until_ready(client, text, timeout=20.0):
    """Calls until the node has a frame (its first answers say 'no image received yet')."""
    deadline = time.monotonic() + timeout
    while True:
        response = call(client, SegmentByText.Request(text=text))
        if response.success or time.monotonic() > deadline:
            return response
        assert 'no image received yet' in response.message or 'not' in response.message, (
            response.message)
        time.sleep(0.1)


def test_node_process_serves_frames_from_the_publisher_process(ros_context, ros_env, tmp_path):
    namespace = f'/p{uuid.uuid4().hex[:8]}'
    frames = _write_frames(tmp_path / 'frames')
    node = start_process([sys.executable, SMALL_NODE, '--ros-args', '-r', f'__ns:={namespace}'],
                         ros_env, tmp_path / 'node.log')
    publisher = start_process(
        [ros_executable('hybridgl_image_publisher'), '--ros-args', '-r', f'__ns:={namespace}',
         '-p', f'source:={frames}', '-p', 'rate_hz:=20.0', '-p', 'focal_length_px:=200.0'],
        ros_env, tmp_path / 'publisher.log')
    client_node = Node('client', context=ros_context, namespace=namespace)
    client = client_node.create_client(SegmentByText, f'{namespace}/hybridgl_node/segment')
    spinner = Spinner(ros_context, client_node)
    try:
        assert client.wait_for_service(timeout_sec=20.0), (tmp_path / 'node.log').read_text()
        response = _segment_until_ready(client, 'the red square')
        assert response.success, response.message
        result = response.result
        assert (result.mask.height, result.mask.width) == (H, W)
        assert image_to_numpy(result.mask)[60:120, 30:90].all()
        assert (result.centroid_x_px, result.centroid_y_px) == (59.5, 89.5)
        assert result.header.frame_id == 'camera_color_optical_frame'
        round_trips = []
        for _ in range(30):
            start = time.perf_counter()
            assert call(client, SegmentByText.Request(text='the blue disc')).success
            round_trips.append((time.perf_counter() - start) * 1000.0)
        print(f'\nround trip {W}x{H}, small segmenter: median '
              f'{statistics.median(round_trips):.1f} ms, max {max(round_trips):.1f} ms')
    finally:
        spinner.stop()
        client_node.destroy_node()
        node_rc, publisher_rc = stop_process(node), stop_process(publisher)
    assert node_rc == 0, (tmp_path / 'node.log').read_text()[-3000:]
    assert publisher_rc == 0, (tmp_path / 'publisher.log').read_text()[-3000:]


def test_image_publisher_fails_clearly_on_a_missing_source(ros_env, tmp_path):
    process = start_process(
        [ros_executable('hybridgl_image_publisher'), '--ros-args', '-p',
         f'source:={tmp_path / "nothing"}'], ros_env, tmp_path / 'publisher.log')
    assert wait_for(lambda: process.poll() is not None, timeout=20.0)
    stop_process(process)
    assert process.returncode == 1
    assert 'source not found' in (tmp_path / 'publisher.log').read_text()


def test_installed_wrappers_exist_for_ros2_run():
    for name in ('hybridgl_node', 'hybridgl_image_publisher'):
        path = ros_executable(name)
        assert path.is_file() and path.stat().st_mode & 0o111, path
        assert 'exec' in path.read_text()


def test_publisher_frames_round_trip(tmp_path):
    frames = _write_frames(tmp_path / 'frames', count=1)
    from hybridgl_ros.ros.image_publisher import FrameSource

    source = FrameSource(str(frames))
    np.testing.assert_array_equal(source.next(), scene_rgb(H, W))
    assert source.next() is None
