"""Helpers of the ROS tests. Importing this module sets the ROS environment (before rclpy.init).

DDS discovery on localhost only, the shipped loopback-only Fast DDS profile, a domain of this
test session's own (so concurrent runs on one machine do not see each other), logs in a
temporary folder removed at exit.
"""
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

from hybridgl_ros.demo.ros_asker import ros_environment  # sets the environment, no rclpy

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config/fastdds_localhost.xml'))
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))
# ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, AMENT_PREFIX_PATH, and a log folder removed at exit
# when ROS_LOG_DIR is unset: the demo's own environment
ros_environment()

import rclpy  # noqa: E402  (after the environment above)
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hybridgl_ros.ros.conversions import numpy_to_image  # noqa: E402
from hybridgl_ros.srv import SegmentByText  # noqa: E402

CAMERA_FRAME = 'camera_color_optical_frame'
SMALL_NODE = Path(__file__).resolve().parent / 'small_node.py'


class Spinner:
    """Spins nodes with a MultiThreadedExecutor in a background thread."""

    def __init__(self, context, *nodes, threads=4):
        self.executor = MultiThreadedExecutor(num_threads=threads, context=context)
        for node in nodes:
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def stop(self):
        if self._thread.is_alive():
            self.executor.shutdown(timeout_sec=5.0)
            self._thread.join(timeout=5.0)


def wait_for(predicate, timeout=5.0, period=0.01):
    """Polls ``predicate`` until it is true; returns its last value (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(period)


def call(client, request, timeout=10.0):
    """A service call from a spun node; returns the response or fails the test."""
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    assert done.wait(timeout), f'no answer from {client.srv_name} within {timeout} s'
    return future.result()


def wait_until_active(node, target: str, timeout=30.0):
    """Waits until the lifecycle node ``target`` (its full name) reports the state *active*: a node
    process answers ``~/segment`` from its start, "not active" until its autostart finished."""
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    client = node.create_client(GetState, f'{target}/get_state')
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'no {target}/get_state'
        deadline = time.monotonic() + timeout
        while True:
            state = call(client, GetState.Request(), timeout=timeout).current_state
            if state.id == State.PRIMARY_STATE_ACTIVE:
                return
            assert time.monotonic() < deadline, f'{target} still {state.label!r} after {timeout} s'
            time.sleep(0.05)
    finally:
        node.destroy_client(client)


def call_all(client, requests, timeout=30.0):
    """Sends every request at once (no waiting between them), then waits for every answer.

    Returns:
        the responses in request order; None for a call that got no answer within ``timeout``.
    """
    futures = [client.call_async(request) for request in requests]
    deadline = time.monotonic() + timeout
    while not all(f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [f.result() if f.done() else None for f in futures]


def start_small_node(env, log_path, namespace, *node_args, ros_args=()):
    """test/ros/small_node.py (the node's real main, the small segmenter) as its own process."""
    return start_process([sys.executable, SMALL_NODE, *node_args, '--ros-args', '-r',
                          f'__ns:={namespace}', *ros_args], env, log_path)


def stamp_header(seconds: float, frame_id: str = CAMERA_FRAME) -> Header:
    """A header stamped ``seconds`` after the epoch."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = int(seconds), int(round(seconds % 1 * 1e9))
    return header


def camera_info(header: Header, height: int, width: int, fx: float, fy: float, cx: float,
                cy: float) -> CameraInfo:
    """A distortion-free pinhole CameraInfo."""
    return CameraInfo(header=header, height=height, width=width, distortion_model='plumb_bob',
                      d=[0.0] * 5, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])


def vm_rss_kib(pid: int, field: str = 'VmRSS') -> int:
    """Resident memory of a process [KiB] from /proc (``RssAnon``: its private heap part)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(f'{field}:'):
            return int(line.split()[1])
    raise RuntimeError(f'no {field} for process {pid}')


def start_process(command, env, log_path):
    """Starts a ROS process in its own session (so SIGINT reaches it), output to a log file."""
    from hybridgl_ros.demo.ros_asker import Process

    return Process(command, env, Path(log_path), cwd=REPO)


def stop_process(process, timeout=10.0):
    """SIGINT to the process group, bounded wait, then SIGKILL; returns the exit code (None if
    SIGINT did not stop it)."""
    return process.stop(timeout)


def ros_executable(name):
    """Where ``ros2 run hybridgl_ros <name>`` finds its executable (through the ament index)."""
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix('hybridgl_ros')) / 'lib' / 'hybridgl_ros' / name


class Harness:
    """The node with an injected segmenter, in a namespace of its own, plus a client node that
    publishes the camera topics, calls ``~/segment`` and records the node's outputs.

    It peeks at the node's input slots only to know when a published message has arrived.
    """

    def __init__(self, context, segmenter, **overrides):
        from hybridgl_ros.ros.node import HybridGLNode

        self.namespace = f'/t{uuid.uuid4().hex[:8]}'
        self.segmenter = segmenter
        params = [Parameter(name, value=value) for name, value in overrides.items()]
        self.node = HybridGLNode(segmenter_factory=lambda config: segmenter, context=context,
                                 namespace=self.namespace, parameter_overrides=params)
        self.client_node = Node('test_client', context=context, namespace=self.namespace)
        self.client = self.client_node.create_client(
            SegmentByText, f'{self.namespace}/hybridgl_node/segment')
        self.publishers = {
            topic: self.client_node.create_publisher(kind, topic, QoSProfile(depth=5))
            for topic, kind in (('image', Image), ('depth', Image), ('camera_info', CameraInfo))}
        self.received = {}
        self.spinner = Spinner(context, self.node, self.client_node)
        assert self.client.wait_for_service(timeout_sec=10.0)
        assert wait_for(lambda: self.node._active or self.node._not_ready.startswith('models'))

    def close(self):
        self.spinner.stop()
        self.node.destroy_node()
        self.client_node.destroy_node()

    def record(self, name, kind):
        """Collects the messages of the node's ``~/<name>`` output into ``received[name]``."""
        self.received[name] = []
        self.client_node.create_subscription(
            kind, f'{self.namespace}/hybridgl_node/{name}', self.received[name].append,
            QoSProfile(depth=10))
        # the node publishes an output only when it sees a subscriber
        assert wait_for(
            lambda: self.node._outputs.publishers[name].get_subscription_count() > 0)

    def publish(self, topic, msg, slot):
        """Publishes on ``topic`` and waits until the node holds it (``slot`` reads that)."""
        publisher = self.publishers[topic]
        assert wait_for(lambda: publisher.get_subscription_count() > 0)
        publisher.publish(msg)
        assert wait_for(lambda: (slot() is not None and slot().header == msg.header)), (
            f'the node did not receive the {topic} message')

    def publish_image(self, image_rgb, header):
        msg = numpy_to_image(image_rgb, 'rgb8', header)
        self.publish('image', msg, lambda: getattr(self.node._image.get(), 'msg', None))

    def publish_depth(self, depth, encoding, info):
        """Publishes a depth image and its camera_info (both stamped like ``info``)."""
        msg = numpy_to_image(depth, encoding, info.header)
        self.publish('depth', msg, self.node._depth.depths.latest)
        self.publish('camera_info', info, self.node._depth.infos.latest)

    def segment(self, text, image=None, timeout=10.0):
        request = SegmentByText.Request(text=text)
        if image is not None:
            request.image = image
        return call(self.client, request, timeout)


__all__ = ['CAMERA_FRAME', 'Harness', 'SMALL_NODE', 'Spinner', 'call', 'call_all',
           'camera_info', 'rclpy', 'ros_executable', 'stamp_header', 'start_process',
           'start_small_node', 'stop_process', 'vm_rss_kib', 'wait_for']
