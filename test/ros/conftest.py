"""Fixtures of the ROS tests: DDS on loopback, a fresh rclpy context per test, executors.

The environment is set when this module is imported, before any ``rclpy.init``: discovery on
localhost only, the shipped loopback-only Fast DDS profile, a domain of this test session's own
(so concurrent runs on one machine do not see each other), logs in a temporary folder.
"""
import os
import random
import sys
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(REPO / 'config/fastdds_localhost.xml'))
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='hybridgl_ros_log_'))
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)

import rclpy  # noqa: E402  (after the environment above)
from rclpy.executors import MultiThreadedExecutor  # noqa: E402


@pytest.fixture
def ros_context():
    """A fresh, initialised rclpy context, shut down after the test."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def ros_env():
    """Environment for child processes that run ROS (same domain, loopback only)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    return env


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
        except rclpy.executors.ExternalShutdownException:
            pass

    def add(self, node):
        self.executor.add_node(node)

    def stop(self):
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)


@pytest.fixture
def spin(ros_context):
    """``spin(*nodes)`` -> a Spinner on the test's context; all are stopped after the test."""
    spinners = []

    def start(*nodes, threads=4):
        spinner = Spinner(ros_context, *nodes, threads=threads)
        spinners.append(spinner)
        return spinner

    yield start
    for spinner in spinners:
        spinner.stop()
