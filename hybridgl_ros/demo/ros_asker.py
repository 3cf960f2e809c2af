"""The ROS side of ``hybridgl demo``: the node and a camera player as processes, a client here.

Every process gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and the package's loopback-only
Fast DDS profile, so no DDS packet leaves the machine.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hybridgl_ros.core.errors import HybridGLError
from hybridgl_ros.core.types import Alternative, ParsedExpression, Segmentation

NODE = 'hybridgl_node'


def ros_environment() -> dict[str, str]:
    """This process's environment with DDS kept on loopback (set here too, before rclpy)."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    profile = _fastdds_profile()
    if profile and 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    if not os.environ.get('ROS_LOG_DIR'):
        # ROS's own log files of this process and its children: gone when this process exits
        folder = tempfile.mkdtemp(prefix='hybridgl_demo_log_')
        atexit.register(shutil.rmtree, folder, True)
        os.environ['ROS_LOG_DIR'] = folder
    return dict(os.environ)


def _fastdds_profile() -> Path | None:
    from hybridgl_ros.demo import package_config_file

    try:
        return package_config_file('fastdds_localhost.xml')
    except FileNotFoundError:
        return None


def _executable(name: str) -> list[str]:
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    module = {'hybridgl_node': 'hybridgl_ros.ros.node_main',
              'hybridgl_image_publisher': 'hybridgl_ros.ros.image_publisher'}[name]
    return [sys.executable, '-m', module]


def _params_file(config, folder: Path) -> Path:
    """A ROS parameter file with every config field plus the demo's node settings."""
    import yaml

    from hybridgl_ros.ros.params import config_param_defaults

    params = dict(config_param_defaults(config))
    params.update({'use_depth': False, 'max_image_age_s': 0.0})
    path = folder / 'demo_params.yaml'
    path.write_text(yaml.safe_dump({NODE: {'ros__parameters': params}}))
    return path


class Process:
    """A child process in its own session (so SIGINT reaches all of it), output to a log file;
    :meth:`stop` sends SIGINT, then SIGKILL after a bounded wait."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path,
                 cwd: Path | None = None) -> None:
        self.log = log
        self._file = log.open('w')
        self.popen = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd,
                                      stdout=self._file, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Stops the process; returns its exit code, or None if SIGINT did not stop it."""
        try:
            if self.alive():
                os.killpg(self.popen.pid, signal.SIGINT)
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout_s)
            return None
        finally:
            self._file.close()


class RosAsker:
    """Asks the node's ``~/segment`` service about the scene the player is showing."""

    def __init__(self, config, timeout_s: float = 180.0) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self.env = ros_environment()
        self.folder = Path(tempfile.mkdtemp(prefix='hybridgl_demo_'))
        self.node_process: Process | None = None
        self.player: Process | None = None
        self.shown_at_ns = 0

    def __enter__(self) -> 'RosAsker':
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from hybridgl_ros.srv import SegmentByText

        self.node_process = Process(
            _executable(NODE) + ['--ros-args', '--params-file',
                                 str(_params_file(self.config, self.folder))],
            self.env, self.folder / 'node.log')
        self.context = Context()
        rclpy.init(context=self.context)
        self.client_node = Node('hybridgl_demo_client', context=self.context)
        self.client = self.client_node.create_client(SegmentByText, f'/{NODE}/segment')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.client_node)
        self._spin = threading.Thread(target=self._spin_forever, daemon=True)
        self._spin.start()
        self._wait_until_ready()
        return self

    def _spin_forever(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def __exit__(self, *exc) -> None:
        import rclpy

        from hybridgl_ros.ros.shutdown import exit_bound

        for process in (self.player, self.node_process):
            if process is not None:
                process.stop()
        with exit_bound():  # a deadlock in Fast DDS's teardown cannot keep the demo
            self.executor.shutdown(timeout_sec=5.0)
            self.client_node.destroy_node()
            rclpy.try_shutdown(context=self.context)
        # the node's and the player's output: removed after a clean run, kept after a failure
        if exc[0] is None:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            print(f'hybridgl demo: the node\'s and the camera player\'s output is kept in '
                  f'{self.folder}', file=sys.stderr, flush=True)

    def _wait_until_ready(self) -> None:
        """Until the node answers with something other than 'still loading'."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if not self.node_process.alive():
                raise HybridGLError(f'hybridgl_node exited: see {self.node_process.log}')
            if self.client.wait_for_service(timeout_sec=1.0):
                response = self._call('is the node ready?', 10.0)
                if response is not None and 'no image received' in response.message:
                    return
                if response is not None and response.message.startswith('models not loaded'):
                    raise HybridGLError(f'hybridgl_node: {response.message}')
            time.sleep(0.5)
        raise HybridGLError(f'hybridgl_node not ready after {self.timeout_s:.0f} s: '
                            f'see {self.node_process.log}')

    def show(self, image_path: Path, image_rgb: np.ndarray) -> None:
        """Replaces the camera player with one playing ``image_path``."""
        self.play(image_path)

    def play(self, source: Path, rate_hz: float = 2.0, loop: bool = True) -> None:
        """Replaces the camera player with one playing ``source`` (an image or a folder)."""
        if self.player is not None:
            self.player.stop()
        self.shown_at_ns = time.time_ns()
        self.player = Process(
            _executable('hybridgl_image_publisher') + [
                '--ros-args', '-p', f'source:={source}', '-p', f'rate_hz:={rate_hz}',
                '-p', f'loop:={str(loop).lower()}'],
            self.env, self.folder / 'player.log')

    def ask(self, text: str) -> Segmentation:
        """The node's answer about the frame now shown (waits for the first such frame)."""
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            response = self._call(text, 120.0)
            if response is None:
                raise HybridGLError(f'no answer from the node within 120 s to {text!r}')
            if response.success and _stamp_ns(response.result.header) >= self.shown_at_ns:
                return segmentation_from_message(response.result)
            if not response.success and 'no image' not in response.message:
                raise HybridGLError(f'the node refused {text!r}: {response.message}')
            time.sleep(0.1)
        raise HybridGLError(f'the node never answered about the new frame for {text!r}')

    def _call(self, text: str, timeout_s: float):
        from hybridgl_ros.srv import SegmentByText

        done = threading.Event()
        future = self.client.call_async(SegmentByText.Request(text=text))
        future.add_done_callback(lambda _: done.set())
        return future.result() if done.wait(timeout_s) else None


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def segmentation_from_message(msg) -> Segmentation:
    """The library's Segmentation of a ``hybridgl_ros/msg/Segmentation``."""
    from hybridgl_ros.ros.conversions import image_to_numpy

    mask = image_to_numpy(msg.mask) > 0 if msg.mask.width else np.zeros((1, 1), bool)
    box = (msg.box.x_offset, msg.box.y_offset, msg.box.width, msg.box.height)
    parse = ParsedExpression(normalized=msg.text, head_phrase=msg.target_phrase,
                             relation=msg.relation, direction=msg.direction)
    return Segmentation(
        found=msg.found, text=msg.text, mask=mask, box_xywh=box, score=msg.score,
        centroid_xy=(msg.centroid_x_px, msg.centroid_y_px),
        interior_xy=(msg.interior_x_px, msg.interior_y_px), index=msg.index,
        pure_index=msg.pure_index, matching_probs=np.asarray(msg.matching_probs),
        spatial_scores=np.asarray(msg.spatial_scores),
        candidate_indices=tuple(msg.candidate_indices),
        candidate_scores=tuple(msg.candidate_scores), parse=parse,
        timings_ms={'total': 1000.0 * msg.elapsed_s, 'prepare': 1000.0 * msg.prepare_s},
        message=msg.message, confidence=float(msg.confidence), ambiguous=bool(msg.ambiguous),
        alternatives=tuple(Alternative(
            index=a.index, box_xywh=(a.box.x_offset, a.box.y_offset, a.box.width, a.box.height),
            interior_xy=(a.interior_x_px, a.interior_y_px), score=a.score,
            confidence=a.confidence) for a in msg.alternatives))
