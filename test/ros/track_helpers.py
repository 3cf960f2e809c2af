"""Helpers of the ~/track action tests: the demo models, a camera playing a generated clip, and
an action client that records a goal's feedback and result."""
import threading
import time

import numpy as np
from rclpy.action import ActionClient

from hybridgl_ros.action import TrackByText
from hybridgl_ros.ros.action_client import SpinSafeActionClient
from hybridgl_ros.ros.conversions import image_to_numpy, numpy_to_image
from ros_helpers import camera_info, stamp_header, wait_for

#: Seconds between the stamps of consecutive clip frames.
FRAME_PERIOD_S = 0.1
#: Distance of the clip's table in the depth images the camera can publish [m].
DEPTH_M = 1.25


def demo_segmenters(prepare_delay_s: float = 3.0):
    """(HybridGL, the same with a proposer that first sleeps ``prepare_delay_s``): the real
    pipeline on the embedded demo models and the demo settings, the models loaded once."""
    import torch

    from hybridgl_ros.core.models import load_clip, load_sam
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.core.proposals import SamProposer
    from hybridgl_ros.demo import demo_config

    config = demo_config()
    device = torch.device('cpu')
    clip_model, sam = load_clip(config.models, device), load_sam(config.models, device)
    proposer = SamProposer(sam, config.proposals)
    fast = HybridGL(config, clip_model=clip_model, proposer=proposer)
    slow = HybridGL(config, clip_model=clip_model,
                    proposer=SlowProposer(proposer, prepare_delay_s))
    fast.parser.parse('warm up')
    slow.parser = fast.parser
    return fast, slow


class SlowProposer:
    """A real proposer that sleeps first: a first answer long enough to be canceled in."""

    def __init__(self, proposer, delay_s: float) -> None:
        self.proposer, self.delay_s, self.sam = proposer, delay_s, proposer.sam

    def propose(self, image_rgb):
        time.sleep(self.delay_s)
        return self.proposer.propose(image_rgb)


class ClipCamera:
    """Publishes a clip's frames on ``image`` at ``rate_hz`` until ``stop``.

    Paused, it repeats the current frame; playing, it moves on one frame per publication,
    forwards then backwards (no jump) with ``loop``, else it holds the last frame. The n-th
    publication is stamped n x FRAME_PERIOD_S; ``truth(header)`` is the target's visible mask
    on the frame published with that stamp.
    """

    def __init__(self, publisher, clip, frames: int, rate_hz: float = 8.0,
                 loop: bool = True, depth_publishers=None) -> None:
        self.clip, self.publisher, self.period, self.loop = clip, publisher, 1.0 / rate_hz, loop
        self.depth_publishers = depth_publishers
        rendered = [clip.frame(t) for t in range(frames)]
        self.images = [f.image_rgb for f in rendered]
        self.masks = [f.masks[clip.target] for f in rendered]
        self.shown: dict[tuple[int, int], int] = {}
        self.playing = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def start(self, timeout: float = 10.0) -> 'ClipCamera':
        """Starts publishing once the node subscribes (it does when its models are loaded)."""
        assert wait_for(lambda: self.publisher.get_subscription_count() > 0, timeout)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def play(self) -> None:
        self.playing.set()

    def _run(self) -> None:
        n, position = 0, 0
        while not self._stop.is_set():
            header = stamp_header(n * FRAME_PERIOD_S)
            t = self.index(position)
            self.shown[(header.stamp.sec, header.stamp.nanosec)] = t
            if self.depth_publishers:
                self._publish_depth(header)
            self.publisher.publish(numpy_to_image(self.images[t], 'rgb8', header))
            n += 1
            position += self.playing.is_set()
            self._stop.wait(self.period)

    def _publish_depth(self, header) -> None:
        """A flat table DEPTH_M away, and the intrinsics, stamped like the frame."""
        depth, info = self.depth_publishers
        height, width = self.images[0].shape[:2]
        plane = np.full((height, width), DEPTH_M, np.float32)
        depth.publish(numpy_to_image(plane, '32FC1', header))
        info.publish(camera_info(header, height, width, 500.0, 500.0, width / 2, height / 2))

    def index(self, position: int) -> int:
        """The clip frame at a playing position."""
        last = len(self.images) - 1
        if not self.loop:
            return min(position, last)
        position %= 2 * last
        return position if position <= last else 2 * last - position

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5.0)

    def truth(self, header) -> np.ndarray:
        return self.masks[self.shown[(header.stamp.sec, header.stamp.nanosec)]]


def mask_iou(segmentation, truth: np.ndarray) -> float:
    """IoU of a Segmentation message's mask with a (H, W) bool mask."""
    mask = image_to_numpy(segmentation.mask) > 0
    union = (mask | truth).sum()
    return float((mask & truth).sum() / union) if union else 0.0


class GoalRun:
    """A goal sent by an ActionClient: its feedback as it arrives, its result."""

    def __init__(self, client: ActionClient, goal, timeout: float = 10.0) -> None:
        self.feedback = []
        self._accepted = threading.Event()
        future = client.send_goal_async(goal, feedback_callback=self._on_feedback)
        future.add_done_callback(lambda _: self._accepted.set())
        assert self._accepted.wait(timeout), 'the goal was not answered'
        self.handle = future.result()
        assert self.handle.accepted
        self._done = threading.Event()
        self._result_future = self.handle.get_result_async()
        self._result_future.add_done_callback(lambda _: self._done.set())

    def _on_feedback(self, message) -> None:
        self.feedback.append(message.feedback)

    def stages(self) -> list[int]:
        return [f.stage for f in self.feedback]

    def wait_stage(self, stage: int, count: int = 1, timeout: float = 60.0) -> bool:
        """Whether ``count`` feedbacks of ``stage`` came (False at once if the goal ended)."""
        wait_for(lambda: self.stages().count(stage) >= count or self._done.is_set(), timeout)
        return self.stages().count(stage) >= count

    def ended(self) -> str:
        """The goal's result message if it has ended, else ''."""
        return self._result_future.result().result.message if self._done.is_set() else ''

    def cancel(self, timeout: float = 10.0):
        done = threading.Event()
        future = self.handle.cancel_goal_async()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), 'no answer to the cancel request'
        return future.result()

    def result(self, timeout: float = 60.0):
        """(goal status, TrackByText.Result) once the goal has ended."""
        assert self._done.wait(timeout), f'no result within {timeout} s'
        response = self._result_future.result()
        return response.status, response.result


def track_client(node, namespace: str, timeout: float = 10.0) -> ActionClient:
    """An ActionClient of ``<namespace>/hybridgl_node/track``, once the server is there."""
    client = SpinSafeActionClient(node, TrackByText, f'{namespace}/hybridgl_node/track')
    assert client.wait_for_server(timeout_sec=timeout)
    return client


def goal(text: str, keep_tracking: bool = True, max_frames: int = 0,
         max_duration_s: float = 0.0, image=None):
    request = TrackByText.Goal(text=text, keep_tracking=keep_tracking, max_frames=max_frames,
                               max_duration_s=max_duration_s)
    if image is not None:
        request.image = image
    return request


def camera(harness, clip, frames: int, rate_hz: float = 8.0, loop: bool = True) -> ClipCamera:
    """A ClipCamera on the harness's publishers (image, depth, camera_info), started (paused
    on frame 0)."""
    publishers = harness.publishers
    return ClipCamera(publishers['image'], clip, frames, rate_hz, loop,
                      (publishers['depth'], publishers['camera_info'])).start()
