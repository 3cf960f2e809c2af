"""The ROS 2 adapter of hybridgl_ros: image conversions, parameters, the node, the publisher.

Nothing here is imported by :mod:`hybridgl_ros.core`; importing this package itself stays
light (modules import rclpy and the message packages only when they are imported).
"""
