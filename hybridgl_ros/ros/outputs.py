"""The node's output topics: what is published after each answer, and with which QoS.

``~/result`` and ``~/mask`` are published after every answer and latched (reliable, transient
local, depth 1), so a subscriber that comes later (``ros2 topic echo`` started after a call)
gets the last answer. ``~/centroid``, ``~/markers`` and ``~/overlay`` are published only when
something subscribes (an unread overlay is not even drawn).
"""
from __future__ import annotations

from geometry_msgs.msg import PointStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from hybridgl_ros.msg import Segmentation as SegmentationMsg
from hybridgl_ros.ros import results
from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.ros.depth import Centroid3D
from hybridgl_ros.ros.frames import PreparedFrame
from hybridgl_ros.ros.params import NodeParams

LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
TOPICS = (('mask', Image, LATCHED_QOS), ('result', SegmentationMsg, LATCHED_QOS),
          ('centroid', PointStamped, 1), ('overlay', Image, 1), ('markers', MarkerArray, 1))


class Outputs:
    """The lifecycle publishers of ``~/<name>`` for every name of :data:`TOPICS`.

    Args:
        node: the lifecycle node that owns them.
    """

    def __init__(self, node) -> None:
        self._node = node
        self.publishers = {name: node.create_lifecycle_publisher(kind, f'~/{name}', qos)
                           for name, kind, qos in TOPICS}

    def destroy(self) -> None:
        for publisher in self.publishers.values():
            self._node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}

    def publish(self, msg: SegmentationMsg, result, prepared: PreparedFrame,
                centroid: Centroid3D | None, settings: NodeParams,
                label: str | None = None) -> None:
        """Publishes one answer (see the module docstring for what goes where); ``label``: the
        overlay's text (default: the expression and the score)."""
        out = self.publishers
        out['result'].publish(msg)
        out['mask'].publish(msg.mask)
        wanted = {name for name, pub in out.items() if pub.get_subscription_count()}
        if 'centroid' in wanted and centroid is not None:
            out['centroid'].publish(msg.centroid_3d)
        if 'markers' in wanted and settings.publish_markers:
            out['markers'].publish(results.result_markers(msg, centroid))
        if 'overlay' in wanted and settings.publish_overlay:
            from hybridgl_ros.viz import draw_overlay

            overlay = draw_overlay(prepared.image_rgb, result, label=label)
            out['overlay'].publish(numpy_to_image(overlay, 'rgb8', prepared.header))
