"""The node's entry point (``hybridgl_node``, ``ros2 run hybridgl_ros hybridgl_node``), and the
image publisher's console script (``hybridgl_image_publisher``).

Installed without ROS 2 (``pip install .``: the library and the CLI), both commands say so in
one line, not with a traceback from the import of rclpy.

It takes SIGINT and SIGTERM before anything else is imported: importing the node (rclpy, the
message packages, torch) takes a quarter of a second, and a signal in that time ended the
process with a traceback (SIGINT, exit code 130) or with no word at all (SIGTERM, 143). A
signal that comes then is kept and handed to the node's own handler once it is installed, and
the process ends by the clean path with exit code 0.
"""
from __future__ import annotations

import importlib.util
import signal
import sys


def ros_missing(command: str) -> str:
    """The one-line answer of a ROS command where rclpy is not installed ('' where it is)."""
    if importlib.util.find_spec('rclpy') is not None:
        return ''
    return (f'{command} needs ROS 2 (rclpy), which is not installed here: install the package '
            'with its ROS 2 requirements (README "Install": bash scripts/setup.sh, or colcon in '
            'a ROS 2 workspace). The library and the hybridgl CLI work without it.')


def main(args=None) -> int:
    early: list[int] = []

    def keep(signum, frame) -> None:
        early.append(signum)

    if missing := ros_missing('hybridgl_node'):
        print(missing, file=sys.stderr)
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, keep)
    from hybridgl_ros.ros.node import main as run_node

    return run_node(args, early_signals=early)


def publisher(args=None) -> int:
    """``hybridgl_image_publisher`` (``ros2 run`` starts ``image_publisher.main`` itself)."""
    if missing := ros_missing('hybridgl_image_publisher'):
        print(missing, file=sys.stderr)
        return 1
    from hybridgl_ros.ros.image_publisher import main as run_publisher

    return run_publisher(args)


if __name__ == '__main__':
    sys.exit(main())
