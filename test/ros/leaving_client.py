"""A client that queues calls on ~/segment and leaves before they are answered, as a planner
that crashed would (its process ends by rclpy's shutdown, so DDS announces that it left).

    python leaving_client.py SERVICE COUNT STAY_S
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile

from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.srv import SegmentByText
from small_segmenter import scene_rgb

if __name__ == '__main__':
    service, count, stay_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node('leaving_client')
    client = node.create_client(SegmentByText, service, qos_profile=QoSProfile(depth=64))
    if not client.wait_for_service(timeout_sec=20.0):
        sys.exit(f'no {service}')
    image = numpy_to_image(np.ascontiguousarray(scene_rgb()), 'rgb8')
    for i in range(count):
        client.call_async(SegmentByText.Request(text=f'red {i}', image=image))
    print(f'sent {count} calls', flush=True)
    deadline = time.monotonic() + stay_s
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    print('left', flush=True)
