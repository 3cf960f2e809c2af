"""The node's entry point (``hybridgl_node``, ``ros2 run hybridgl_ros hybridgl_node``).

It takes SIGINT and SIGTERM before anything else is imported: importing the node (rclpy, the
message packages, torch) takes a quarter of a second, and a signal in that time ended the
process with a traceback (SIGINT, exit code 130) or with no word at all (SIGTERM, 143). A
signal that comes then is kept and handed to the node's own handler once it is installed, and
the process ends by the clean path with exit code 0.
"""
from __future__ import annotations

import signal
import sys


def main(args=None) -> int:
    early: list[int] = []

    def keep(signum, frame) -> None:
        early.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, keep)
    from hybridgl_ros.ros.node import main as run_node

    return run_node(args, early_signals=early)


if __name__ == '__main__':
    sys.exit(main())
