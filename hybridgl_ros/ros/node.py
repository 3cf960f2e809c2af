"""``hybridgl_node``: referring-expression segmentation (HybridGL) as a ROS 2 lifecycle node.

Inputs (relative names, remap them): ``image`` (sensor_msgs/Image), and with ``use_depth``
a registered ``depth`` image (16UC1 mm or 32FC1 m) with its ``camera_info``, paired with the
image by nearest stamp when the image is selected for a call. Service ``~/segment``
(hybridgl_ros/srv/SegmentByText) answers on the latest image or on the request's image. After
each answer it publishes ``~/mask`` (mono8) and ``~/result`` (hybridgl_ros/msg/Segmentation),
both latched (transient local, depth 1), ``~/centroid`` (PointStamped, only when depth gave a 3D
point), ``~/overlay`` (rgb8) and ``~/markers``.

Models load on *configure* (``autostart`` configures and activates at start-up). If loading
fails, the node stays up and every request is answered with success=false and the reason.
Calls are taken off the wire at once, queued (``max_queued_requests``; more are answered
"busy") and served one at a time by a worker thread, in order of arrival, so frames and
parameter changes keep arriving during a query; repeated queries on the same frame reuse its
prepared work (``prepare`` once, ``query`` per text). Parameters: see
:mod:`hybridgl_ros.ros.live_params` for which apply live. SIGINT/SIGTERM answer every pending
call "shutting down" and exit within about a second (:mod:`hybridgl_ros.ros.shutdown`). The
lifecycle transition *shutdown* ends the process the same way once its answer is sent: in the
finalized state a node is only waiting to be destroyed (ROS 2's lifecycle design), and a
process left running there holds its memory and its names on the graph for nothing.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any, Callable, Sequence

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import HybridGLError, InvalidInputError, ResourceExhaustedError
from hybridgl_ros.core.out_of_memory import is_out_of_memory, release_cached_memory
from hybridgl_ros.core.text import is_blank
from hybridgl_ros.msg import Segmentation as SegmentationMsg
from hybridgl_ros.ros import live_params, results
from hybridgl_ros.ros.depth_pairing import DepthSync, centroid_3d
from hybridgl_ros.ros.frames import FrameCache
from hybridgl_ros.ros.log_bridge import LibraryLogBridge
from hybridgl_ros.ros.outputs import Outputs
from hybridgl_ros.ros.params import (
    NODE_NAME, NodeParams, all_param_defaults, config_from_node, declare_parameters,
    node_params_from_node)
from hybridgl_ros.ros.request_queue import RequestQueue, Ticket
from hybridgl_ros.ros.shutdown import StopSignal, exit_now, run_until_stopped
from hybridgl_ros.ros.sync import LatestSlot, staleness
from hybridgl_ros.ros.track_server import TrackServer
from hybridgl_ros.srv import SegmentByText

#: config -> an object with ``prepare(image_rgb) -> Frame`` and ``query(frame, text)``.
SegmenterFactory = Callable[[HybridGLConfig], Any]
#: From the lifecycle transition shutdown to the process's exit: time for its answer to leave.
FINALIZED_EXIT_DELAY_S = 0.5
#: Calls arriving faster than the executor takes them wait in the service's DDS reader. KEEP_ALL:
#: none is overwritten, the clients' writers hold what the reader has not taken yet (KEEP_LAST
#: with 1,000 lost calls beyond about 1,000 at once: 73 of 1,100 from one client).
SERVICE_QOS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_ALL,
                         reliability=ReliabilityPolicy.RELIABLE)
DEMO_MODELS_WARNING = (
    'using the embedded DEMO models ({which}): toy models trained only on synthetic table-top '
    'scenes; they do not know real camera images. For a real camera set models.clip_weights '
    'and models.sam_checkpoint (see the README)')


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
        on_finalized: called when the lifecycle transition shutdown has answered every call
            (:func:`main` then ends the process, a running query not waited for); None = the
            node releases its models and stays, finalized.
        **kwargs: passed to rclpy's LifecycleNode (context, parameter_overrides, ...).
    """

    def __init__(self, segmenter_factory: SegmenterFactory | None = None,
                 on_finalized: Callable[[], None] | None = None, **kwargs) -> None:
        super().__init__(kwargs.pop('node_name', NODE_NAME), **kwargs)
        self._on_finalized = on_finalized
        declare_parameters(self)
        self._log_bridge = LibraryLogBridge(self.get_logger())
        self._factory = segmenter_factory or default_segmenter_factory
        self._segmenter = None
        self._settings = NodeParams()
        self._not_ready = 'the node is not configured yet: its models are not loaded'
        self._active = False
        self._loading = False  # on_configure is loading the models
        self._image, self._depth = LatestSlot(), DepthSync()
        self._frames = FrameCache()
        self._failed_key: int | None = None
        self._inputs: list = []
        self._outputs: Outputs | None = None
        self._busy = threading.Lock()  # a query, or a lifecycle transition touching the models
        self._sensor_group = MutuallyExclusiveCallbackGroup()  # tiny callbacks, a frame at a time
        self._requests = RequestQueue(
            self._serve, idle=self._prepare_ahead, wake=self._wake_executor,
            max_queued=self.get_parameter('max_queued_requests').value,
            listened=self._has_clients)
        self._service = self.create_service(
            SegmentByText, '~/segment', self._requests.call, qos_profile=SERVICE_QOS,
            callback_group=ReentrantCallbackGroup())
        self._tracks = TrackServer(self)  # the ~/track action (hybridgl_ros/action/TrackByText)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter('autostart').value:
            self._autostart_timer = self.create_timer(
                0.0, self._autostart, callback_group=MutuallyExclusiveCallbackGroup())

    # ------------------------------------------------------------------------- lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self._requests.closed:   # a signal came first: loading now would only be waited for
            return
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        self._not_ready = 'the node is loading its models (lifecycle: configuring)'
        self._loading = True
        try:
            self._settings = node_params_from_node(self)
            config = config_from_node(self)
            segmenter = self._load(config)
        except HybridGLError as exc:
            self._not_ready = f'models not loaded: {exc}. Fix it, then configure the node again'
            self.get_logger().error(self._not_ready)
            return TransitionCallbackReturn.FAILURE
        finally:
            self._loading = False
        if self._requests.closed:  # shut down while the models loaded
            return TransitionCallbackReturn.FAILURE
        with self._busy:
            self._segmenter = segmenter
            self._requests.max_queued = self._settings.max_queued_requests
            self._create_io()
            self._not_ready = ''
        self._warn_if_demo_models(config)
        self.get_logger().info('models loaded; inputs: ' + ', '.join(
            sub.topic_name for sub in self._inputs))
        return super().on_configure(state)

    def _load(self, config: HybridGLConfig):
        try:
            return self._factory(config)
        except HybridGLError:
            raise
        except Exception as exc:  # an unforeseen failure inside a library: keep the node up
            self.get_logger().error(f'loading the models failed:\n{traceback.format_exc()}')
            raise HybridGLError(f'{type(exc).__name__}: {exc}') from exc

    def _warn_if_demo_models(self, config: HybridGLConfig) -> None:
        from hybridgl_ros.core.models import uses_demo_clip, uses_demo_sam

        which = [name for name, demo in (('CLIP', uses_demo_clip(config.models)),
                                         ('SAM', uses_demo_sam(config.models))) if demo]
        if which:
            self.get_logger().warning(DEMO_MODELS_WARNING.format(which=' and '.join(which)))

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
        reason = 'the node is shutting down (lifecycle shutdown)'
        ends_process = self._on_finalized is not None and not self._requests.closed
        self.stop_serving(reason)  # waiting and running calls are answered at once
        if ends_process:  # as after SIGINT: a running query is not waited for, the exit frees all
            self.get_logger().info('lifecycle shutdown: the node is finalized; the process ends')
            self._on_finalized()
        else:
            self._release(reason)  # waits for a running query before the models go
        return TransitionCallbackReturn.SUCCESS

    def _create_io(self) -> None:
        s = self._settings
        qos = QoSProfile(depth=s.image_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=(ReliabilityPolicy.RELIABLE if s.image_reliability ==
                                      'reliable' else ReliabilityPolicy.BEST_EFFORT))
        streams = [(Image, 'image', self._image.put)]
        if s.use_depth:
            streams += [(Image, 'depth', self._depth.add_depth),
                        (CameraInfo, 'camera_info', self._depth.add_info)]
        self._inputs = [self.create_subscription(kind, topic, callback, qos,
                                                 callback_group=self._sensor_group)
                        for kind, topic, callback in streams]
        self._outputs = Outputs(self)

    def _release(self, reason: str) -> None:
        self._tracks.stop_all(reason)
        with self._busy:  # waits for a running query
            for sub in self._inputs:
                self.destroy_subscription(sub)
            if self._outputs is not None:
                self._outputs.destroy()
            self._inputs, self._outputs = [], None
            self._active, self._segmenter = False, None
            self._frames.clear()
            self._image.clear()
            self._depth.clear()
            self._not_ready = reason
            release_cached_memory()

    def destroy_node(self) -> None:
        self.stop_serving('the node is shutting down')
        self._requests.join(0.5)
        self._tracks.destroy()
        self._log_bridge.close()
        super().destroy_node()

    # ------------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters}
        current = {name: self.get_parameter(name).value for name in all_param_defaults()}
        reason, settings = live_params.review(changes, current, self._segmenter is not None)
        if reason:
            self.get_logger().warning(f'parameter change refused: {reason}')
            return SetParametersResult(successful=False, reason=reason)
        if self._segmenter is not None and settings is not None:
            self._settings = settings
            self._requests.max_queued = settings.max_queued_requests
        return SetParametersResult(successful=True)

    # --------------------------------------------------------------------------- service
    def stop_serving(self, reason: str) -> bool:
        """Answers every waiting and running call with ``reason`` and refuses new ones.

        Returns:
            whether a query is still running (its caller already has the answer) or the models
            are still loading: the process should not wait for either.
        """
        loading = self._loading
        if not self._requests.closed:
            answered = self._requests.close(reason)
            counts = ', '.join(f'{n} {k}' for k, n in self._requests.counts.items())
            self.get_logger().info(f'{reason}: answered {answered} pending call(s) (calls since '
                                   f'start: {counts})')
        self._tracks.stop_all(reason)
        return self._requests.busy or loading

    def wait_answered(self, timeout_s: float) -> bool:
        """Waits until the answers of :meth:`stop_serving` are handed to rclpy (the track
        goals' results included)."""
        deadline = time.monotonic() + timeout_s
        answered = self._requests.wait_answered(timeout_s)
        return self._tracks.wait_ended(max(deadline - time.monotonic(), 0.0)) and answered

    def _has_clients(self) -> bool:
        """Whether a client of ~/segment is on the graph (to read the next call's answer)."""
        try:
            if self.count_clients(self._service.service_name) > 0:
                return True
        except Exception:  # the node is being destroyed: the call is answered on shutdown
            return True
        self.get_logger().info('a queued call is not computed: no client of ~/segment is left '
                               'to read its answer', throttle_duration_sec=5.0)
        return False

    def _wake_executor(self) -> None:
        if self.executor is not None:
            self.executor.wake()

    def _serve(self, ticket: Ticket) -> None:
        start = time.perf_counter()
        try:
            with self._busy:
                msg, summary = self._segment(ticket.request, start)
            ticket.answer(True, results.printable(summary), msg)
            return
        except HybridGLError as exc:
            if isinstance(exc, ResourceExhaustedError):  # the library dropped the frame's state
                self._frames.clear()
            reason = str(exc)
        except Exception as exc:  # the service boundary: a failed answer never kills the node
            reason = 'internal error' if ticket.answered else self._unexpected(exc)
        if ticket.answer(False, results.printable(reason)):
            self.get_logger().warning(
                f'segment {ticket.request.text[:80]!r}: {ticket.response.message}')

    def _segment(self, request, start: float) -> tuple[SegmentationMsg, str]:
        if self._segmenter is None:
            raise NotReadyError(self._not_ready)
        if not self._active:
            raise NotReadyError('the node is configured but not active: activate it '
                                '(lifecycle transition "activate")')
        s = self._settings
        text = self._check_text(request.text)
        image, key = self._select_image(request.image)
        with self._depth.watch(image.header, s.sync_slop_s) as depth:  # see depth_pairing
            prepared = self._frames.frame_for(self._segmenter, image, key)
            result = self._segmenter.query(prepared.frame, text)
        pair = depth.pair()
        centroid, depth_note = (centroid_3d(result.mask, prepared.header, pair, s)
                                if result.found and s.use_depth else (None, ''))
        message = '; '.join(m for m in (result.message, depth_note) if m)
        msg = results.result_message(result, prepared.header, centroid,
                                     time.perf_counter() - start, prepared.prepare_s, message)
        self._outputs.publish(msg, result, prepared, centroid, s)
        return msg, results.response_summary(msg)

    def _check_text(self, text: str) -> str:
        if is_blank(text):  # the library's rule, checked before the frame is prepared
            raise InvalidInputError('the text is empty: send a referring expression, e.g. '
                                    '"the red cup on the left"')
        if len(text) > self._settings.max_text_chars:
            raise InvalidInputError(
                f'the text has {len(text)} characters; at most '
                f'{self._settings.max_text_chars} are accepted (parameter max_text_chars)')
        return text

    def _select_image(self, image: Image) -> tuple[Image, int | None]:
        """The request's image if it has one, else the latest camera image (checked fresh)."""
        if image.width or image.height or len(image.data):
            return image, None
        item = self._image.get()
        topic = self._inputs[0].topic_name if self._inputs else 'image'
        if item is None:
            raise NotReadyError(f'no image received yet on {topic}')
        s = self._settings
        stale = staleness(item, topic, s.max_image_age_s, s.max_stamp_age_s,
                          self.get_clock().now().nanoseconds)
        if stale:
            raise NotReadyError(stale)
        return item.msg, item.seq

    def _prepare_ahead(self) -> None:
        """Runs on the worker thread while no call waits (``prepare_on_arrival``)."""
        if not self._settings.prepare_on_arrival:
            return
        with self._busy:
            item = self._image.get()
            if (self._segmenter is None or not self._active or item is None
                    or item.seq == self._failed_key or self._frames.holds(item.seq)):
                return
            try:
                self._frames.frame_for(self._segmenter, item.msg, item.seq)
            except HybridGLError as exc:
                self._failed_key = item.seq
                self.get_logger().warning(f'cannot prepare the latest image: {exc}',
                                          throttle_duration_sec=5.0)
            except Exception as exc:  # the worker thread must keep serving calls
                self._failed_key = item.seq
                self._unexpected(exc)

    def _unexpected(self, exc: Exception) -> str:
        if is_out_of_memory(exc):
            self._frames.clear()
            release_cached_memory()
            first_line = str(exc).strip().split('\n')[0]
            return f'out of memory while segmenting ({first_line}); the node keeps serving'
        self.get_logger().error(f'unexpected error:\n{traceback.format_exc()}')
        return f'internal error: {type(exc).__name__}: {exc} (see the node log)'


def main(args=None, segmenter_factory: SegmenterFactory | None = None,
         early_signals: Sequence[int] = ()) -> int:
    """Runs the node until SIGINT/SIGTERM (``ros2 run hybridgl_ros hybridgl_node``, through
    :mod:`hybridgl_ros.ros.node_main`, which keeps the signals that come while this module
    is imported: ``early_signals``)."""
    stop = StopSignal()
    stop.install()  # before anything slow: a signal at any moment ends in the clean path
    for signum in list(early_signals):
        stop.take(signum)
    if stop.event.is_set():
        print(f'hybridgl_node: {stop.name} before start-up: exiting', file=sys.stderr)
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # after the transition's answer has gone to its caller (``ros2 lifecycle set`` waits for it)
    node = HybridGLNode(segmenter_factory, on_finalized=lambda: stop.request(
        'lifecycle shutdown', delay_s=FINALIZED_EXIT_DELAY_S))
    if run_until_stopped(node, stop):
        exit_now(0)  # a query still runs in torch; its caller has been answered
    return 0


if __name__ == '__main__':
    sys.exit(main())
