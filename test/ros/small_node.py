"""Runs hybridgl_node (its real main) with the small colour segmenter, as its own process.

    python small_node.py [--prepare-delay S] [--query-delay S] [--prepare-torch S]
                         [--block-in-destroy] [--ros-args ...]

--block-in-destroy: the node's destroy_node, called during shutdown, blocks in C with the GIL
held, as a deadlock inside Fast DDS does (no Python code runs again in the process).
"""
import argparse
import ctypes
import sys

from hybridgl_ros.ros.node import main
from small_segmenter import ColourSegmenter

if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--prepare-delay', type=float, default=0.0)
    parser.add_argument('--query-delay', type=float, default=0.0)
    parser.add_argument('--prepare-torch', type=float, default=0.0)
    parser.add_argument('--block-in-destroy', action='store_true')
    options, ros_args = parser.parse_known_args()
    if options.block_in_destroy:
        from hybridgl_ros.ros.node import HybridGLNode

        def destroy_node_blocked(self):
            ctypes.PyDLL(None).sleep(3600)  # libc sleep, called with the GIL held

        HybridGLNode.destroy_node = destroy_node_blocked
    segmenter = ColourSegmenter(options.prepare_delay, options.query_delay, options.prepare_torch)
    sys.exit(main([sys.argv[0], *ros_args], segmenter_factory=lambda config: segmenter))
