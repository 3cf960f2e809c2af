"""``hybridgl_node``: referring-expression segmentation (HybridGL) as a ROS 2 lifecycle node.

Inputs (relative names, remap them): ``image`` (sensor_msgs/Image), and with ``use_depth``
an aligned ``depth`` image (16UC1 mm or 32FC1 m) with its ``camera_info``, paired with the
image by nearest stamp at query time. Service ``~/segment`` (hybridgl_ros/srv/SegmentByText)
answers on the latest image or on the request's image. After each answer it publishes
``~/mask`` (mono8), ``~/result`` (hybridgl_ros/msg/Segmentation), ``~/centroid``
(PointStamped, only when depth gave a 3D point), ``~/overlay`` (rgb8) and ``~/markers``.

Models load on *configure* (``autostart`` configures and activates at start-up). If loading
fails, the node stays up and every request is answered with success=false and the reason.
Queries run in their own callback group, so frames keep arriving during a query; repeated
queries on the same frame reuse its prepared work (``prepare`` once, ``query`` per text).
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any, Callable

import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import HybridGLError, InvalidInputError
from hybridgl_ros.msg import Segmentation as SegmentationMsg
from hybridgl_ros.ros import results
from hybridgl_ros.ros.conversions import depth_to_meters, numpy_to_image
from hybridgl_ros.ros.depth import Centroid3D, image_mask_centroid_3d
from hybridgl_ros.ros.frames import FrameCache, PreparedFrame
from hybridgl_ros.ros.params import (
    NODE_NAME, NodeParams, config_from_node, declare_parameters, node_params_from_node)
from hybridgl_ros.ros.sync import LatestSlot, StampBuffer, stamp_ns
from hybridgl_ros.ros.track_server import TrackServer
from hybridgl_ros.srv import SegmentByText

#: config -> an object with ``prepare(image_rgb) -> Frame`` and ``query(frame, text)``.
SegmenterFactory = Callable[[HybridGLConfig], Any]
PREPARE_AHEAD_PERIOD_S = 0.02


class NotReadyError(HybridGLError):
    """The node cannot answer yet: models not loaded, not active, no recent image."""


def default_segmenter_factory(config: HybridGLConfig):
    """``HybridGL.from_config``: the real pipeline (embedded demo models for empty paths)."""
    from hybridgl_ros.core.pipeline import HybridGL

    return HybridGL.from_config(config)


class HybridGLNode(LifecycleNode):
    """The ROS adapter: convert messages -> call the library -> convert results.

    Args:
        segmenter_factory: builds the segmenter from the config on configure (tests inject
            small ones); default :func:`default_segmenter_factory`.
        **kwargs: passed to rclpy's LifecycleNode (context, parameter_overrides, ...).
    """

    def __init__(self, segmenter_factory: SegmenterFactory | None = None, **kwargs) -> None:
        super().__init__(kwargs.pop('node_name', NODE_NAME), **kwargs)
        declare_parameters(self)
        self._factory = segmenter_factory or default_segmenter_factory
        self._segmenter = None
        self._settings = NodeParams()
        self._not_ready = 'the node is not configured yet: its models are not loaded'
        self._active = False
        self._image, self._depths, self._infos = LatestSlot(), StampBuffer(), StampBuffer()
        self._frames = FrameCache()
        self._failed_key: int | None = None
        self._inputs: list = []
        self._outputs: dict[str, Any] = {}
        self._timers_owned: list = []
        self._infer_group = MutuallyExclusiveCallbackGroup()
        self._busy = threading.Lock()  # a query, or a lifecycle transition touching the models
        self._sensor_group = MutuallyExclusiveCallbackGroup()  # tiny callbacks, a frame at a time
        self.create_service(SegmentByText, '~/segment', self._on_segment,
                            callback_group=self._infer_group)
        self._tracks = TrackServer(self)  # the ~/track action (hybridgl_ros/action/TrackByText)
        if self.get_parameter('autostart').value:
            self._autostart_timer = self.create_timer(
                0.0, self._autostart, callback_group=MutuallyExclusiveCallbackGroup())

    # ------------------------------------------------------------------------- lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        self._not_ready = 'the node is loading its models (lifecycle: configuring)'
        try:
            self._settings = node_params_from_node(self)
            segmenter = self._load(config_from_node(self))
        except HybridGLError as exc:
            self._not_ready = f'models not loaded: {exc}. Fix it, then configure the node again'
            self.get_logger().error(self._not_ready)
            return TransitionCallbackReturn.FAILURE
        with self._busy:
            self._segmenter = segmenter
            self._create_io()
            self._not_ready = ''
        self.get_logger().info('models loaded; inputs: ' + ', '.join(
            sub.topic_name for sub in self._inputs))
        return super().on_configure(state)

    def _load(self, config: HybridGLConfig):
        try:
            return self._factory(config)
        except HybridGLError:
            raise
        except Exception as exc:  # e.g. a corrupt checkpoint inside torch.load: keep the node up
            self.get_logger().error(f'loading the models failed:\n{traceback.format_exc()}')
            raise HybridGLError(f'{type(exc).__name__}: {exc}') from exc

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._tracks.stop_all('the node was deactivated')
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release('the node was cleaned up: configure it to load the models again')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release('the node is shutting down')
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._tracks.destroy()
        super().destroy_node()

    def _create_io(self) -> None:
        s = self._settings
        qos = QoSProfile(depth=s.image_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=(ReliabilityPolicy.RELIABLE if s.image_reliability ==
                                      'reliable' else ReliabilityPolicy.BEST_EFFORT))
        streams = [(Image, 'image', self._image.put)]
        if s.use_depth:
            streams += [(Image, 'depth', self._depths.add), (CameraInfo, 'camera_info',
                                                             self._infos.add)]
        self._inputs = [self.create_subscription(kind, topic, callback, qos,
                                                 callback_group=self._sensor_group)
                        for kind, topic, callback in streams]
        out_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST)
        self._outputs = {
            name: self.create_lifecycle_publisher(kind, f'~/{name}', out_qos)
            for name, kind in (('mask', Image), ('result', SegmentationMsg),
                               ('centroid', PointStamped), ('overlay', Image),
                               ('markers', MarkerArray))}
        if s.prepare_on_arrival:
            self._timers_owned.append(self.create_timer(
                PREPARE_AHEAD_PERIOD_S, self._prepare_ahead, callback_group=self._infer_group))

    def _release(self, reason: str) -> None:
        self._tracks.stop_all(reason)
        with self._busy:  # waits for a running query
            self._release_unlocked(reason)

    def _release_unlocked(self, reason: str) -> None:
        for timer in self._timers_owned:
            self.destroy_timer(timer)
        for sub in self._inputs:
            self.destroy_subscription(sub)
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        self._timers_owned, self._inputs, self._outputs = [], [], {}
        self._active, self._segmenter = False, None
        self._frames.clear()
        for buffer in (self._image, self._depths, self._infos):
            buffer.clear()
        self._not_ready = reason
        torch = sys.modules.get('torch')
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --------------------------------------------------------------------------- service
    def _on_segment(self, request, response):
        start = time.perf_counter()
        try:
            with self._busy:
                response.result, response.message = self._segment(request, start)
            response.success = True
        except HybridGLError as exc:
            response.success, response.message = False, str(exc)
        except Exception as exc:  # the service boundary: a failed answer never kills the node
            response.success, response.message = False, self._unexpected(exc)
        if not response.success:
            self.get_logger().warning(f'segment {request.text[:80]!r}: {response.message}')
        return response

    def _segment(self, request, start: float) -> tuple[SegmentationMsg, str]:
        if self._segmenter is None:
            raise NotReadyError(self._not_ready)
        if not self._active:
            raise NotReadyError('the node is configured but not active: activate it '
                                '(lifecycle transition "activate")')
        text = self._check_text(request.text)
        image = request.image
        has_image = image.width or image.height or len(image.data)
        prepared = (self._frames.frame_for(self._segmenter, image, None) if has_image
                    else self._prepare_latest())
        result = self._segmenter.query(prepared.frame, text)
        centroid, depth_note = self._centroid_3d(result, prepared.header)
        message = '; '.join(m for m in (result.message, depth_note) if m)
        msg = results.result_message(result, prepared.header, centroid,
                                     time.perf_counter() - start, prepared.prepare_s, message)
        self._publish(msg, result, prepared, centroid)
        return msg, results.response_summary(msg)

    def _check_text(self, text: str) -> str:
        if not text or not text.strip():
            raise InvalidInputError('the text is empty: send a referring expression, e.g. '
                                    '"the red cup on the left"')
        if len(text) > self._settings.max_text_chars:
            raise InvalidInputError(
                f'the text has {len(text)} characters; at most '
                f'{self._settings.max_text_chars} are accepted (parameter max_text_chars)')
        return text

    def _prepare_latest(self, cancel=None) -> PreparedFrame:
        item = self._image.get()
        topic = self._inputs[0].topic_name if self._inputs else 'image'
        if item is None:
            raise NotReadyError(f'no image received yet on {topic}')
        age, max_age = time.monotonic() - item.at, self._settings.max_image_age_s
        if 0 < max_age < age:
            raise NotReadyError(f'the latest image on {topic} arrived {age:.1f} s ago '
                                f'(max_image_age_s = {max_age:g}): is the camera running?')
        return self._frames.frame_for(self._segmenter, item.msg, item.seq, cancel)

    def _prepare_ahead(self) -> None:
        with self._busy:
            item = self._image.get()
            if (self._segmenter is None or not self._active or item is None
                    or item.seq == self._failed_key
                    or self._frames.holds(item.seq)):
                return
            try:
                self._frames.frame_for(self._segmenter, item.msg, item.seq)
            except HybridGLError as exc:
                self._failed_key = item.seq
                self.get_logger().warning(f'cannot prepare the latest image: {exc}',
                                          throttle_duration_sec=5.0)
            except Exception as exc:  # a timer callback must not take the executor down
                self._failed_key = item.seq
                self._unexpected(exc)

    def _centroid_3d(self, result, header: Header) -> tuple[Centroid3D | None, str]:
        s = self._settings
        if not (result.found and s.use_depth):
            return None, ''
        stamp, slop = stamp_ns(header), int(s.sync_slop_s * 1e9)
        depth_msg = self._depths.nearest(stamp, slop)
        info = self._infos.nearest(stamp, slop) or self._infos.latest()
        if depth_msg is None or info is None:
            missing = 'depth image' if depth_msg is None else 'camera_info'
            return None, f'no {missing} within sync_slop_s of the image: 2D result only'
        try:
            return image_mask_centroid_3d(
                result.mask, depth_to_meters(depth_msg, s.depth_units_to_m), info.k,
                (info.height, info.width), s.depth_min_valid_px)
        except InvalidInputError as exc:
            return None, f'depth unusable ({exc}): 2D result only'

    def _publish(self, msg: SegmentationMsg, result, prepared: PreparedFrame,
                 centroid: Centroid3D | None, label: str | None = None) -> None:
        """Publishes the outputs somebody listens to (an unread overlay is not even drawn)."""
        wanted = {name for name, pub in self._outputs.items() if pub.get_subscription_count()}
        for name, value in (('mask', msg.mask), ('result', msg), ('centroid', msg.centroid_3d)):
            if name in wanted and (name != 'centroid' or centroid is not None):
                self._outputs[name].publish(value)
        if 'markers' in wanted and self._settings.publish_markers:
            self._outputs['markers'].publish(results.result_markers(msg, centroid))
        if 'overlay' in wanted and self._settings.publish_overlay:
            from hybridgl_ros.viz import draw_overlay

            overlay = draw_overlay(prepared.image_rgb, result, label=label)
            self._outputs['overlay'].publish(numpy_to_image(overlay, 'rgb8', prepared.header))

    def _unexpected(self, exc: Exception) -> str:
        if _is_out_of_memory(exc):
            self._frames.clear()
            torch = sys.modules.get('torch')
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()
            first_line = str(exc).strip().split('\n')[0]
            return f'out of memory while segmenting ({first_line}); the node keeps serving'
        self.get_logger().error(f'unexpected error:\n{traceback.format_exc()}')
        return f'internal error: {type(exc).__name__}: {exc} (see the node log)'


def _is_out_of_memory(exc: Exception) -> bool:
    """CUDA out of memory (torch.cuda.OutOfMemoryError) or host MemoryError."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == 'OutOfMemoryError' or (
        isinstance(exc, RuntimeError) and 'out of memory' in str(exc).lower())


def main(args=None, segmenter_factory: SegmenterFactory | None = None) -> int:
    """Runs the node until SIGINT/shutdown (``ros2 run hybridgl_ros hybridgl_node``)."""
    rclpy.init(args=args)
    node = HybridGLNode(segmenter_factory)
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
