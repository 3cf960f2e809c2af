"""The tracking part of ``hybridgl demo``: one generated clip followed, as an animated overlay.

Through ROS (the default), the camera player first shows the clip's first frame; a
``~/track`` goal gets the first answer on it; then the player plays the whole clip once (after
a lead-in of that first frame) and the node follows the object. The GIF is made of what the
node publishes on ``~/overlay`` (tinted mask, box, centroid, interior point, the track's trail
and the tracking quality). With ``--no-ros`` the library's Follower runs on the frames and the
overlays are drawn here the same way. Writes ``track.gif`` (every overlay, half size) and
``track_strip.png`` (six of them).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from hybridgl_ros.core.errors import HybridGLError

#: The clip of the demo: a look-alike (the same purple cube) slides past the referred one.
TRACK_CLIP = (6001, 9)
TRACK_FRAMES = 40
TRACK_RATE_HZ = 5.0
#: Copies of the first frame the player shows before the clip (DDS discovery of a new player).
LEAD_IN_FRAMES = 15


def run_track_demo(asker, out: Path, frames: int = TRACK_FRAMES) -> dict:
    """Follows the demo clip through ``asker`` (a RosAsker, or a LibraryAsker); writes the GIF
    and the strip into ``out``; returns ``{'text', 'summary'}`` (the summary in words)."""
    from hybridgl_ros.cli import write_image_rgb
    from hybridgl_ros.demo.sequences import make_clip
    from hybridgl_ros.viz import contact_sheet

    clip = make_clip(*TRACK_CLIP, frames=max(frames, 4))
    rendered = list(clip)
    folder = out / 'track_clip'
    for t, frame in enumerate(rendered):
        write_image_rgb(folder / 'clip' / f'frame_{t:03d}.png', frame.image_rgb)
    for k in range(LEAD_IN_FRAMES):      # a new player's first frames find no subscriber yet
        write_image_rgb(folder / 'clip' / f'first_{k:02d}.png', rendered[0].image_rgb)
    write_image_rgb(folder / 'first' / 'frame_000.png', rendered[0].image_rgb)
    if hasattr(asker, 'segmenter'):
        overlays, summary = _library_track(asker.segmenter, clip, rendered)
    else:
        overlays, summary = _ros_track(asker, folder, clip.text)
    if not overlays:
        raise HybridGLError('the tracking demo produced no overlay')
    overlays = overlays[:1] + overlays[1:][-len(rendered):]     # the answer, then the clip
    write_gif(out / 'track.gif', overlays, TRACK_RATE_HZ)
    picks = np.linspace(0, len(overlays) - 1, 6).round().astype(int)
    write_image_rgb(out / 'track_strip.png', contact_sheet([overlays[i] for i in picks],
                                                           columns=3, tile_width=320))
    return {'text': clip.text, 'summary': f'{summary}, {len(overlays)} overlays'}


def write_gif(path: Path, images: list[np.ndarray], rate_hz: float) -> None:
    """An endless GIF of RGB pictures at half size (Pillow)."""
    from PIL import Image

    frames = [Image.fromarray(np.ascontiguousarray(i[::2, ::2])) for i in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], loop=0,
                   duration=int(1000 / rate_hz), optimize=True)


def _library_track(segmenter, clip, frames) -> tuple[list[np.ndarray], str]:
    from hybridgl_ros.core.follow import Follower
    from hybridgl_ros.ros.track_frames import with_trail
    from hybridgl_ros.viz import draw_overlay

    follower = Follower(segmenter)
    result = follower.first(frames[0].image_rgb, clip.text)
    trail = [result.centroid_xy] if result.found else []
    overlays = [draw_overlay(frames[0].image_rgb, result, label=f'{clip.text}  (the method)')]
    status = 'not found'
    for t, frame in enumerate(frames[1:], start=1):
        if not follower.active:
            break
        update = follower.next(frame.image_rgb)
        status = update.status
        if update.segmentation.found:
            trail.append(update.segmentation.centroid_xy)
        label = f'{clip.text}  frame {t} {status} q={update.quality:.2f}'
        overlays.append(draw_overlay(with_trail(frame.image_rgb, trail), update.segmentation,
                                     label=label))
    return overlays, f'{len(overlays) - 1} frames followed, last status {status}'


def _ros_track(asker, folder: Path, text: str) -> tuple[list[np.ndarray], str]:
    """The node's ~/track action on the clip played by the camera player; the node's overlays."""
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from hybridgl_ros.action import TrackByText
    from hybridgl_ros.demo.ros_asker import NODE
    from hybridgl_ros.ros.action_client import SpinSafeActionClient
    from hybridgl_ros.ros.conversions import image_to_rgb

    overlays: list[np.ndarray] = []
    subscription = asker.client_node.create_subscription(
        Image, f'/{NODE}/overlay', lambda msg: overlays.append(image_to_rgb(msg)),
        QoSProfile(depth=10))
    client = SpinSafeActionClient(asker.client_node, TrackByText, f'/{NODE}/track')
    try:
        if not client.wait_for_server(timeout_sec=30.0):
            raise HybridGLError('the node offers no ~/track action')
        asker.play(folder / 'first', rate_hz=TRACK_RATE_HZ, loop=True)
        asker.ask(text)                  # waits for the player; the node keeps the frame
        overlays.clear()
        result = _follow_clip(asker, client, text, folder / 'clip')
    finally:
        client.destroy()
        asker.client_node.destroy_subscription(subscription)
    # the count holds the frames the player showed before the clip; the demo ends the goal
    # once the clip has played (the action's result then says "canceled by the client")
    return overlays, (f'{result.frames_tracked} frames tracked at {result.rate_hz:.1f} frames/s '
                      f'(the clip and the frames shown before it), then stopped by the demo at '
                      f"the clip's end ({result.message})")


def _follow_clip(asker, client, text: str, clip_folder: Path):
    """Sends the goal; once answered, plays the clip once; cancels when the frames stop."""
    from hybridgl_ros.action import TrackByText

    answered, tracking, done = threading.Event(), threading.Event(), threading.Event()
    last_feedback = [time.monotonic()]

    def on_feedback(message) -> None:
        last_feedback[0] = time.monotonic()
        stage = message.feedback.stage
        (answered if stage == TrackByText.Feedback.ANSWERED else tracking).set()

    goal = TrackByText.Goal(text=text, keep_tracking=True,
                            max_duration_s=float(asker.timeout_s + 60.0))
    handle = _wait(client.send_goal_async(goal, feedback_callback=on_feedback), 30.0)
    if not handle.accepted:
        raise HybridGLError('the node did not accept the ~/track goal')
    result_future = handle.get_result_async()
    result_future.add_done_callback(lambda _: done.set())
    if not answered.wait(asker.timeout_s) and not done.is_set():
        raise HybridGLError('no first answer from ~/track')
    if not done.is_set():
        tracking.clear()
        asker.play(clip_folder, rate_hz=TRACK_RATE_HZ, loop=False)
        tracking.wait(60.0)              # the player's first frames (a process starting)
        while not done.wait(0.2):
            if time.monotonic() - last_feedback[0] > 3.0:    # the clip has ended
                handle.cancel_goal_async()
                break
    if not done.wait(30.0):
        raise HybridGLError('no result from ~/track')
    return result_future.result().result


def _wait(future, timeout_s: float):
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout_s):
        raise HybridGLError(f'no answer from the node within {timeout_s:.0f} s')
    return future.result()
