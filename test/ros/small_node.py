"""Runs hybridgl_node (its real main) with the small colour segmenter, as its own process.

    python small_node.py [--prepare-delay S] [--query-delay S] [--prepare-torch S] [--ros-args ...]
"""
import argparse
import sys

from hybridgl_ros.ros.node import main
from small_segmenter import ColourSegmenter

if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--prepare-delay', type=float, default=0.0)
    parser.add_argument('--query-delay', type=float, default=0.0)
    parser.add_argument('--prepare-torch', type=float, default=0.0)
    options, ros_args = parser.parse_known_args()
    segmenter = ColourSegmenter(options.prepare_delay, options.query_delay, options.prepare_torch)
    sys.exit(main([sys.argv[0], *ros_args], segmenter_factory=lambda config: segmenter))
