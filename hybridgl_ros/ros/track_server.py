"""The ``~/track`` action of ``hybridgl_node`` (hybridgl_ros/action/TrackByText).

A goal gets the method's answer once (on the goal's image or the latest camera frame, through
the node's prepared-frame cache, as ``~/segment`` would), then with ``keep_tracking`` the
library's :class:`~hybridgl_ros.core.follow.Follower` follows the object on each new camera
frame. Every tracked frame goes out as feedback and on the node's topics (``~/mask``,
``~/result``, ``~/centroid``, ``~/overlay`` with the track's trail, ``~/markers``).

One goal runs at a time (one camera, one set of models). The others wait in a queue of
``track_queue_size`` goals, in order, with QUEUED feedback; a goal beyond that ends at once
with reason REFUSED. No goal is dropped: each ends with a result that says why.

Cancel works at any moment: the goal's :class:`~hybridgl_ros.core.cancel.CancelToken` is set
by the cancel request and checked by the library between its stages, by the tracker, and
between frames; a waiting goal ends at once. Deactivating or cleaning up the node ends every
goal with reason FAILED.

A first answer takes seconds on a CPU, and the camera moves on meanwhile: the frames that
arrive during it are kept (grey, bounded: ``track_frames.FrameRecorder``) and the tracker
follows the object through them by optical flow before it takes the next new frame.

Threads: the running goal's execute callback runs the whole goal in one executor thread;
waiting goals hold none (their execution starts when their turn comes).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup

from hybridgl_ros.action import TrackByText
from hybridgl_ros.core.cancel import CancelToken, Cancelled
from hybridgl_ros.core.errors import HybridGLError
from hybridgl_ros.ros import results, track_frames
from hybridgl_ros.ros.frames import PreparedFrame

Result = TrackByText.Result
Feedback = TrackByText.Feedback
LOG = logging.getLogger(__name__)
#: How often a goal looks for a new camera frame or its turn [s] (a cancel wakes it at once).
POLL_S = 0.005
#: How long a canceled goal waits for rclpy to mark it CANCELING before it ends [s].
CANCEL_STATE_WAIT_S = 2.0
#: Centroids of the last tracked frames drawn on the overlay.
TRAIL_LENGTH = 30
#: After the last goal's callback returned, for rclpy to send its result [s].
RESULT_GRACE_S = 0.2
#: How often a running goal asks the graph whether its action client still listens [s].
LISTENER_CHECK_S = 0.5
#: A goal's listeners are the feedback readers seen this long after it came in [s]: its own
#: client's, created before it sent the goal, and those of clients there already; a client
#: that comes later does not keep another's goal running.
LISTENER_GRACE_S = 2.0
#: The cancel token's reason when the client cancels (other reasons: the node stops the goal).
CLIENT_CANCEL = 'canceled by the client'


def default_follower_factory(segmenter):
    """The library's Follower on the node's segmenter (its SAM and CLIP, its tracking config)."""
    from hybridgl_ros.core.follow import Follower

    return Follower(segmenter)


class _Ended(Exception):
    """A goal ends: the reason (a Result constant) and the message."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Goal:
    handle: object
    token: CancelToken = field(default_factory=CancelToken)
    refused: str = ''
    last: object = None            # the last Segmentation message
    quality: float = 0.0
    frames: int = 0
    started: float = field(default_factory=time.monotonic)
    tracking_s: float = 0.0
    trail: deque = field(default_factory=lambda: deque(maxlen=TRAIL_LENGTH))
    accepted: float = field(default_factory=time.monotonic)
    listeners: set = field(default_factory=set)   # feedback readers seen as the goal came in
    unheard_since: float | None = None            # since when none of them listens
    listeners_checked: float = 0.0


class TrackServer:
    """The action server; ``node`` is the :class:`~hybridgl_ros.ros.node.HybridGLNode` it serves.

    It uses of the node: ``_busy`` (the models' lock), ``_segmenter``, ``_active``,
    ``_not_ready``, ``_settings``, ``_image``, ``_depth``, ``_frames``, ``_outputs``,
    ``_check_text``, ``_select_image`` and ``_unexpected``.

    Args:
        node: the node.
        follower_factory: segmenter -> Follower (tests inject small ones).
    """

    def __init__(self, node, follower_factory=default_follower_factory) -> None:
        self._node = node
        self._factory = follower_factory
        self._follower = None
        self._follower_of = None
        self._lock = threading.Lock()
        self._running: _Goal | None = None
        self._queue: deque[_Goal] = deque()
        self._goals: dict[bytes, _Goal] = {}
        self._executing = 0            # execute callbacks not returned yet
        self._server = ActionServer(
            node, TrackByText, '~/track', self._execute,
            goal_callback=lambda request: GoalResponse.ACCEPT,
            handle_accepted_callback=self._on_accepted, cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup())
        self._feedback_topic = node.resolve_topic_name('~/track') + '/_action/feedback'

    def stop_all(self, reason: str) -> None:
        """Ends the running goal and every waiting one with reason FAILED and ``reason``."""
        with self._lock:
            running, waiting = self._running, list(self._queue)
            self._queue.clear()
        for goal in ([running] if running else []) + waiting:
            goal.token.cancel(reason)
        for goal in waiting:
            goal.handle.execute()      # each ends at once

    def destroy(self) -> None:
        self.stop_all('the node is shutting down')
        self._server.destroy()

    def wait_ended(self, timeout_s: float) -> bool:
        """Waits until every execute callback has returned its result to rclpy (after
        :meth:`stop_all`); whether they all have."""
        deadline = time.monotonic() + timeout_s
        waited = bool(self._executing)
        while self._executing and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if waited:     # rclpy hands the result to the waiting client on the executor's next turn
            time.sleep(min(RESULT_GRACE_S, max(deadline - time.monotonic(), 0.0)))
        return not self._executing

    # ------------------------------------------------------------------------- admission
    def _on_accepted(self, handle) -> None:
        goal = _Goal(handle)
        goal.listeners |= self._listeners()
        limit = self._node._settings.track_queue_size
        with self._lock:
            self._goals[bytes(handle.goal_id.uuid)] = goal
            if self._running is None:
                self._running, waiting = goal, -1
            elif len(self._queue) < limit:
                self._queue.append(goal)
                waiting = len(self._queue)
            else:
                goal.refused, waiting = (f'{len(self._queue)} goals are already waiting behind '
                                         f'the running one (track_queue_size = {limit})'), -1
        if waiting < 0:
            handle.execute()
        else:
            handle.publish_feedback(results.track_feedback(Feedback.QUEUED,
                                                           queue_position=waiting))

    def _on_cancel(self, handle) -> CancelResponse:
        goal = self._goals.get(bytes(handle.goal_id.uuid))
        if goal is None:
            return CancelResponse.REJECT
        goal.token.cancel(CLIENT_CANCEL)
        with self._lock:
            waiting = goal in self._queue
            if waiting:
                self._queue.remove(goal)
        if waiting:
            handle.execute()       # it ends at once, as CANCELED
        return CancelResponse.ACCEPT

    def _next_goal(self, finished: _Goal) -> None:
        with self._lock:
            self._goals.pop(bytes(finished.handle.goal_id.uuid), None)
            if self._running is not finished:
                return
            self._running = self._queue.popleft() if self._queue else None
            following = self._running
            positions = list(enumerate(self._queue, start=1))
        if following is not None:
            following.started = time.monotonic()
            following.handle.execute()
        for position, goal in positions:
            goal.handle.publish_feedback(results.track_feedback(Feedback.QUEUED,
                                                                queue_position=position))

    # ------------------------------------------------------------------------- execution
    def _execute(self, handle):
        goal = self._goals.get(bytes(handle.goal_id.uuid)) or _Goal(handle)
        with self._lock:
            self._executing += 1
        try:
            try:
                reason, message = self._outcome(goal)
            finally:
                self._next_goal(goal)
            self._conclude(goal, reason)
            return results.track_result(
                reason, message, goal.last, goal.quality, goal.frames,
                goal.frames / goal.tracking_s if goal.tracking_s else 0.0,
                time.monotonic() - goal.started)
        finally:
            with self._lock:
                self._executing -= 1

    def _outcome(self, goal: _Goal) -> tuple[int, str]:
        """Runs the goal; (reason, message) of its end."""
        if goal.refused:
            return Result.REFUSED, f'refused: {goal.refused}'
        try:
            self._run(goal)
            return Result.DONE, self._done_message(goal)
        except _Ended as ended:
            return ended.reason, str(ended)
        except Cancelled as exc:
            return (Result.CANCELED if goal.token.reason == CLIENT_CANCEL else Result.FAILED,
                    str(exc))
        except HybridGLError as exc:
            return Result.FAILED, str(exc)
        except Exception as exc:  # the action boundary: a goal's bug never kills the node
            return Result.FAILED, self._node._unexpected(exc)

    def _conclude(self, goal: _Goal, reason: int) -> None:
        """Sets the goal's terminal state (CANCELED only from CANCELING, as rcl_action wants)."""
        handle = goal.handle
        if reason == Result.CANCELED:
            deadline = time.monotonic() + CANCEL_STATE_WAIT_S
            while not handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if handle.is_cancel_requested:
                handle.canceled()
                return
        if reason in (Result.REFUSED, Result.FAILED, Result.CANCELED):
            handle.abort()
        else:
            handle.succeed()

    def _done_message(self, goal: _Goal) -> str:
        if not goal.handle.request.keep_tracking:
            return f'done: {results.response_summary(goal.last)}'
        return f'done: {goal.frames} frames tracked (max_frames)'

    # ------------------------------------------------------------------------- one goal
    def _run(self, goal: _Goal) -> None:
        request = goal.handle.request
        goal.token.check()
        if not request.max_duration_s >= 0:    # NaN fails too
            raise _Ended(Result.FAILED, f'max_duration_s must be >= 0 (0 = no limit), not '
                         f'{request.max_duration_s:g}')
        recorder = track_frames.FrameRecorder(self._node._image)
        with recorder if request.keep_tracking else contextlib.nullcontext():
            seq, follower = self._first_answer(goal)
        if not goal.last.found:
            raise _Ended(Result.NOT_FOUND, results.response_summary(goal.last))
        if not request.keep_tracking:
            return
        seq = self._catch_up(goal, follower, recorder, seq)
        tracking_start = time.monotonic()
        while not (request.max_frames and goal.frames >= request.max_frames):
            self._check_limits(goal)
            item = self._next_frame(goal, seq)
            seq = item.seq
            with self._models(goal.token):
                self._ready_segmenter()
                update = self._follow(goal, follower, item)
            goal.tracking_s = time.monotonic() - tracking_start
            if update.lost:
                raise _Ended(Result.OBJECT_LOST, update.message)

    def _catch_up(self, goal: _Goal, follower, recorder, seq: int) -> int:
        """Follows the object through the frames that came during the first answer; returns
        the arrival number of the last of them (``seq`` if none came)."""
        missed = recorder.after(seq)
        if not missed:
            return seq
        with self._models(goal.token):
            follower.catch_up([gray for _, gray in missed], goal.token)
        return missed[-1][0]

    def _first_answer(self, goal: _Goal) -> tuple[int, object]:
        """The method's answer, published; (the camera arrival number it is as new as, the
        follower that tracks from it)."""
        node, request = self._node, goal.handle.request
        latest = node._image.get()
        self._feedback(goal, Feedback.PREPARING)
        with self._models(goal.token):
            segmenter = self._ready_segmenter()
            text = node._check_text(request.text)
            image, key = node._select_image(request.image)
            with node._depth.watch(image.header, node._settings.sync_slop_s) as depth:
                prepared = node._frames.frame_for(segmenter, image, key, cancel=goal.token)
                goal.token.check()
                self._feedback(goal, Feedback.SCORING)
                follower = self._follower_for(segmenter)
                start = time.perf_counter()
                result = follower.first(prepared.image_rgb, text, goal.token,
                                        frame=prepared.frame)
            elapsed = time.perf_counter() - start + prepared.prepare_s
            self._publish(goal, result, prepared, 1.0, elapsed, prepared.prepare_s,
                          pair=depth.pair())
        self._feedback(goal, Feedback.ANSWERED, segmentation=goal.last, quality=1.0,
                       message=results.response_summary(goal.last))
        # a goal's own image is taken for the camera frame latest when the goal started
        seq = prepared.key if prepared.key is not None else (latest.seq if latest else 0)
        return seq, follower

    def _follow(self, goal: _Goal, follower, item):
        """One tracked frame: the follower's update, published and sent as feedback."""
        from hybridgl_ros.core.follow import SEARCHING
        from hybridgl_ros.core.tracking import UNCERTAIN
        from hybridgl_ros.ros.conversions import image_to_rgb

        start = time.perf_counter()
        image_rgb = image_to_rgb(item.msg)
        update = follower.next(image_rgb, goal.token)
        prepared = PreparedFrame(item.seq, item.msg.header, image_rgb, None, 0.0)
        label = (f'{update.segmentation.text}  frame {update.frame_index} {update.status}  '
                 f'quality {update.quality:.2f}')
        self._publish(goal, update.segmentation, prepared, update.quality,
                      time.perf_counter() - start, 0.0, label)
        goal.frames += 1
        stage = Feedback.SEARCHING if update.status == SEARCHING else Feedback.TRACKING
        self._feedback(goal, stage, frame_index=update.frame_index, segmentation=goal.last,
                       certain=update.status not in (UNCERTAIN, SEARCHING),
                       quality=update.quality, message=update.message)
        return update

    def _publish(self, goal: _Goal, segmentation, prepared: PreparedFrame, quality: float,
                 elapsed_s: float, prepare_s: float, label: str | None = None,
                 pair=None) -> None:
        """The answer as a message, on the node's topics too (the overlay with the trail);
        ``pair``: the depth watched for the frame (None: paired now)."""
        node = self._node
        centroid, depth_note = self._centroid(segmentation, prepared.header, pair)
        message = '; '.join(m for m in (segmentation.message, depth_note) if m)
        goal.last = results.result_message(segmentation, prepared.header, centroid, elapsed_s,
                                           prepare_s, message)
        goal.quality = quality
        if segmentation.found:
            goal.trail.append(segmentation.centroid_xy)
        trail_image = track_frames.with_trail(prepared.image_rgb, goal.trail)
        node._outputs.publish(goal.last, segmentation, replace(prepared, image_rgb=trail_image),
                              centroid, node._settings, label)

    def _centroid(self, segmentation, header, pair=None):
        """The 3D centroid from the depth paired with the frame, or (None, why not)."""
        from hybridgl_ros.ros.depth_pairing import centroid_3d

        settings = self._node._settings
        if not (segmentation.found and settings.use_depth):
            return None, ''
        if pair is None:
            pair = self._node._depth.pair(header, settings.sync_slop_s)
        return centroid_3d(segmentation.mask, header, pair, settings)

    def _feedback(self, goal: _Goal, stage: int, **fields) -> None:
        goal.handle.publish_feedback(results.track_feedback(stage, **fields))

    # ------------------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def _models(self, token: CancelToken):
        """The node's model lock, waited for while watching the token."""
        busy = self._node._busy
        while not busy.acquire(timeout=0.05):
            token.check()
        try:
            token.check()
            yield
        finally:
            busy.release()

    def _ready_segmenter(self):
        from hybridgl_ros.ros.node import NotReadyError

        node = self._node
        if node._segmenter is None:
            raise NotReadyError(node._not_ready)
        if not node._active:
            raise NotReadyError('the node is configured but not active: activate it '
                                '(lifecycle transition "activate")')
        return node._segmenter

    def _follower_for(self, segmenter):
        if self._follower_of is not segmenter:
            self._follower, self._follower_of = self._factory(segmenter), segmenter
        return self._follower

    def _check_limits(self, goal: _Goal) -> None:
        goal.token.check()
        if not self._node.context.ok():
            raise _Ended(Result.FAILED, 'the node is shutting down')
        self._check_listener(goal)
        limit = goal.handle.request.max_duration_s
        if limit > 0 and time.monotonic() - goal.started >= limit:
            raise _Ended(Result.TIMED_OUT, f'timed out: max_duration_s = {limit:g} s passed '
                         f'({goal.frames} frames tracked)')

    def _listeners(self) -> set[bytes]:
        """The endpoint ids of the feedback's readers now (every rclpy / rcl action client has
        one, whether it reads the feedback or not)."""
        try:
            infos = self._node.get_subscriptions_info_by_topic(self._feedback_topic)
        except Exception:  # noqa: BLE001 - a graph query never ends a goal on its own
            LOG.debug('feedback readers of %s not known', self._feedback_topic, exc_info=True)
            return set()
        return {bytes(info.endpoint_gid) for info in infos}

    def _check_listener(self, goal: _Goal) -> None:
        """FAILED when none of the action clients there as the goal came in has listened to
        the feedback for ``track_client_timeout_s``: its client is gone (killed, or exited
        without canceling), and tracking for nobody would hold the action from the others."""
        timeout = self._node._settings.track_client_timeout_s
        now = time.monotonic()
        if not timeout > 0 or now - goal.listeners_checked < LISTENER_CHECK_S:
            return
        goal.listeners_checked = now
        readers = self._listeners()
        if now - goal.accepted < LISTENER_GRACE_S:
            goal.listeners |= readers
        if goal.listeners & readers or (not goal.listeners and readers):
            goal.unheard_since = None
            return
        goal.unheard_since = goal.unheard_since or now
        if now - goal.unheard_since >= timeout:
            message = (f'no action client has listened for {timeout:g} s '
                       f'(track_client_timeout_s): its client is gone; '
                       f'{goal.frames} frames tracked')
            self._node.get_logger().warning(f'~/track goal ended: {message}')
            raise _Ended(Result.FAILED, message)

    def _next_frame(self, goal: _Goal, seq: int):
        """The first camera frame newer than arrival ``seq`` (TIMED_OUT when the camera stops
        for ``max_image_age_s``)."""
        slot, max_age = self._node._image, self._node._settings.max_image_age_s
        waited_from = time.monotonic()
        while True:
            item = slot.get()
            if item is not None and item.seq > seq:
                return item
            if 0 < max_age < time.monotonic() - waited_from:
                raise _Ended(Result.TIMED_OUT, f'timed out: no new camera frame for '
                             f'{max_age:g} s (max_image_age_s): is the camera running?')
            self._check_limits(goal)
            goal.token.wait(POLL_S)
