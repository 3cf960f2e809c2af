"""Library results -> ROS messages: the Segmentation result message, the centroid, RViz markers."""
from __future__ import annotations

import unicodedata

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, PointStamped
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from hybridgl_ros.core.types import Alternative, Segmentation
from hybridgl_ros.msg import Alternative as AlternativeMsg
from hybridgl_ros.msg import Segmentation as SegmentationMsg
from hybridgl_ros.ros.conversions import mask_to_image
from hybridgl_ros.ros.depth import Centroid3D

MARKER_NS = 'hybridgl'
_GREEN = ColorRGBA(r=0.0, g=0.8, b=0.35, a=0.9)
_BOX = ColorRGBA(r=1.0, g=0.82, b=0.0, a=0.35)
_WHITE = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)


def result_message(result: Segmentation, header: Header, centroid: Centroid3D | None,
                   elapsed_s: float, prepare_s: float, message: str) -> SegmentationMsg:
    """The ``hybridgl_ros/Segmentation`` message of one answer.

    Args:
        result: the library's answer.
        header: stamp and frame of the source image.
        centroid: the 3D centroid from depth, or None (then ``has_3d`` is false).
        elapsed_s: wall time of the query in the node [s].
        prepare_s: part of it spent preparing the frame [s].
        message: the remark to carry (why nothing was found, no depth, truncation).
    """
    msg = SegmentationMsg(
        header=header, text=result.text, found=bool(result.found), message=message,
        confidence=float(result.confidence), ambiguous=bool(result.ambiguous),
        alternatives=[alternative_message(a, result.mask.shape) for a in result.alternatives],
        mask=mask_to_image(result.mask, header), box=region_of_interest(result),
        score=float(result.score), centroid_x_px=float(result.centroid_xy[0]),
        centroid_y_px=float(result.centroid_xy[1]), interior_x_px=int(result.interior_xy[0]),
        interior_y_px=int(result.interior_xy[1]), has_3d=centroid is not None,
        target_phrase=result.parse.head_phrase, relation=result.parse.relation,
        direction=result.parse.direction, index=int(result.index),
        pure_index=int(result.pure_index), elapsed_s=float(elapsed_s),
        prepare_s=float(prepare_s))
    msg.centroid_3d = centroid_point(header, centroid)
    msg.matching_probs = np.asarray(result.matching_probs, np.float32).ravel().tolist()
    msg.spatial_scores = np.asarray(result.spatial_scores, np.float32).ravel().tolist()
    msg.candidate_indices = [int(i) for i in result.candidate_indices]
    msg.candidate_scores = [float(s) for s in result.candidate_scores]
    return msg


def region_of_interest(result: Segmentation) -> RegionOfInterest:
    """The chosen mask's box as pixel counts; all zero if nothing was found."""
    if not result.found:
        return RegionOfInterest()
    return box_region(result.box_xywh, result.mask.shape)


def box_region(box_xywh, image_hw) -> RegionOfInterest:
    """A SAM box as pixel counts, clamped to the image.

    The library's box is SAM's (``width = x_max - x_min`` with an inclusive maximum, one less
    than the pixels it spans); a RegionOfInterest counts pixels, so it is one wider and one
    taller, clamped to the image of (height, width) ``image_hw``.
    """
    height, width = image_hw
    x, y, w, h = (int(v) for v in box_xywh)
    x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    return RegionOfInterest(x_offset=x, y_offset=y, width=min(max(w, 0) + 1, width - x),
                            height=min(max(h, 0) + 1, height - y), do_rectify=False)


def alternative_message(alternative: Alternative, image_hw) -> AlternativeMsg:
    """A near-tied object of an ambiguous answer as an ``Alternative`` message (its box as
    pixel counts, like the answer's, in an image of (height, width) ``image_hw``)."""
    return AlternativeMsg(
        index=int(alternative.index), box=box_region(alternative.box_xywh, image_hw),
        interior_x_px=int(alternative.interior_xy[0]),
        interior_y_px=int(alternative.interior_xy[1]), score=float(alternative.score),
        confidence=float(alternative.confidence))


def centroid_point(header: Header, centroid: Centroid3D | None) -> PointStamped:
    """The 3D centroid as a PointStamped in the image's optical frame (zeros if None)."""
    point = Point()
    if centroid is not None:
        point.x, point.y, point.z = centroid.xyz_m
    return PointStamped(header=header, point=point)


def result_markers(result: SegmentationMsg, centroid: Centroid3D | None) -> MarkerArray:
    """RViz markers of a 3D result: centroid sphere, 3D box, text label.

    Without a 3D centroid the array holds a single DELETEALL, so old markers disappear.
    """
    if centroid is None:
        return MarkerArray(markers=[Marker(header=result.header, ns=MARKER_NS,
                                           action=Marker.DELETEALL)])
    low, high = np.asarray(centroid.box_min_m), np.asarray(centroid.box_max_m)
    size = np.maximum(high - low, 0.01)
    radius = float(np.clip(size.min() * 0.25, 0.01, 0.05))
    sphere = _marker(result.header, 0, Marker.SPHERE, centroid.xyz_m, (radius * 2,) * 3, _GREEN)
    box = _marker(result.header, 1, Marker.CUBE, (low + high) / 2.0, size, _BOX)
    label_at = (centroid.xyz_m[0], float(low[1]) - 0.05, centroid.xyz_m[2])
    label = _marker(result.header, 2, Marker.TEXT_VIEW_FACING, label_at, (0.05,) * 3, _WHITE)
    label.text = f'{result.text} ({result.score:.2f})'
    return MarkerArray(markers=[sphere, box, label])


def _marker(header: Header, marker_id: int, kind: int, position, scale, color) -> Marker:
    marker = Marker(header=header, ns=MARKER_NS, id=marker_id, type=kind, action=Marker.ADD,
                    color=color, lifetime=Duration(sec=0))
    marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = (
        float(v) for v in position)
    marker.pose.orientation.w = 1.0
    marker.scale.x, marker.scale.y, marker.scale.z = (float(v) for v in scale)
    return marker


def printable(text: str) -> str:
    """``text`` with control and format characters (newlines, escapes, bidi overrides, ...)
    written as ``\\uXXXX``, so a caller's text cannot forge log lines or terminal output."""
    return ''.join(f'\\u{ord(c):04x}' if unicodedata.category(c)[0] in 'CZ' and c != ' '
                   else c for c in text)


def response_summary(msg: SegmentationMsg) -> str:
    """The response message: what was found, where, how sure, and any remark."""
    if not msg.found:
        text = msg.message or 'no object found'
        return text if text.startswith('no object') else f'no object found: {text}'
    sure = '' if np.isnan(msg.confidence) else f', confidence {msg.confidence:.2f}'
    out = (f'found "{msg.target_phrase}" (score {msg.score:.2f}{sure}) at pixel '
           f'({msg.interior_x_px}, {msg.interior_y_px})')
    if msg.ambiguous:
        out += (f'; ambiguous: {len(msg.alternatives) + 1} objects fit about equally '
                f'(also at ' + ', '.join(f'({a.interior_x_px}, {a.interior_y_px})'
                                         for a in msg.alternatives) + ')')
    if msg.has_3d:
        p = msg.centroid_3d.point
        out += f', 3D ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in {msg.header.frame_id or "?"}'
    return f'{out}; {msg.message}' if msg.message else out


def track_feedback(stage: int, *, queue_position: int = 0, frame_index: int = 0,
                   segmentation: SegmentationMsg | None = None, certain: bool = True,
                   quality: float = 0.0, message: str = ''):
    """A ``TrackByText`` feedback message (``stage``: one of its constants)."""
    from hybridgl_ros.action import TrackByText

    feedback = TrackByText.Feedback(stage=stage, queue_position=queue_position,
                                    frame_index=frame_index, certain=certain,
                                    tracking_quality=float(quality), message=message)
    if segmentation is not None:
        feedback.segmentation = segmentation
    return feedback


def track_result(reason: int, message: str, last: SegmentationMsg | None, quality: float,
                 frames: int, rate_hz: float, elapsed_s: float):
    """A ``TrackByText`` result: why the goal ended, its last answer and its figures."""
    from hybridgl_ros.action import TrackByText

    result = TrackByText.Result(reason=reason, message=message, tracking_quality=float(quality),
                                frames_tracked=frames, rate_hz=float(rate_hz),
                                elapsed_s=float(elapsed_s))
    if last is not None:
        result.last = last
    return result
