"""Seeded clips of the demo world for tracking: a moving camera (pan, zoom) and moving objects.

A clip is a short video of a table top (``scenes``' renderer: same shapes, colours, shadows and
sensor noise) seen by a camera that pans and zooms over a table larger than the view, with a
referred *target*, distractors, and in some kinds a look-alike (same shape, colour and size).
Every frame comes with the exact visible mask of every object (an object in front hides the
ones behind it) and the fraction of each object that is visible.

Kinds (``CLIP_KINDS``):

* ``pan`` — the camera pans; everything stays on the table; the target stays in view.
* ``zoom`` — the camera zooms in or out (x1.0 to x1.5) while panning a little.
* ``moving`` — the target slides across the table while the camera pans slowly.
* ``leave`` — the camera pans until the target has left the view, and on for
  ``LEAVE_TAIL_FRAMES`` frames after.
* ``lookalike`` — a look-alike of the target slides past it from one side to the other, close
  behind it (the target hides part of the look-alike) or, in every other look-alike clip of a
  series, close in front of it (the look-alike hides part of the target).

Clip ``index`` of series ``seed`` is always the same (``numpy.random.default_rng([seed, index,
...])``). Frames are rendered on demand (``clip.frame(t)``), so a clip holds no pixels.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import cv2
import numpy as np

from hybridgl_ros.demo.scenes import (
    COLOURS, HEIGHT_PX, RADIUS_RANGE_PX, SHAPES, WIDTH_PX, SceneObject, background,
    render_objects, shape_mask)

CLIP_KINDS = ('pan', 'zoom', 'moving', 'leave', 'lookalike')
#: Clip series of the tracking evaluation and demo (never used in training).
SEQUENCE_SEED = 6001
DEFAULT_FRAMES = 40
#: Frames a ``leave`` clip goes on after the target has left the view.
LEAVE_TAIL_FRAMES = 10
#: The table: world pixels (the view at zoom 1 sees 640x480 of it).
WORLD_WIDTH_PX, WORLD_HEIGHT_PX = 1120, 840
_GAP_PX = 16.0
_VIEW_CENTRE = np.array([WIDTH_PX / 2.0, HEIGHT_PX / 2.0])


@dataclass(frozen=True)
class Mover:
    """One object on the table: where it starts and how it moves (world pixels).

    Attributes:
        obj: shape, colour, size, radius and angle; ``center_xy`` is the world position at
            frame 0.
        velocity_xy: world pixels per frame.
        spin_deg: in-plane rotation per frame [degrees].
    """

    obj: SceneObject
    velocity_xy: tuple[float, float] = (0.0, 0.0)
    spin_deg: float = 0.0

    def at(self, t: float) -> SceneObject:
        """The object at frame ``t`` in world pixels."""
        x, y = self.obj.center_xy
        return replace(self.obj, center_xy=(x + self.velocity_xy[0] * t,
                                            y + self.velocity_xy[1] * t),
                       angle_deg=self.obj.angle_deg + self.spin_deg * t)


@dataclass(frozen=True)
class Camera:
    """A camera moving linearly over the table: view centre (world px) and zoom per frame."""

    start_xy: tuple[float, float]
    end_xy: tuple[float, float]
    zoom_start: float = 1.0
    zoom_end: float = 1.0

    def at(self, t: float, frames: int) -> tuple[np.ndarray, float]:
        """(centre (2,) world px, zoom) at frame ``t`` of ``frames``."""
        a = t / max(frames - 1, 1)
        centre = (1 - a) * np.asarray(self.start_xy) + a * np.asarray(self.end_xy)
        return centre, float((1 - a) * self.zoom_start + a * self.zoom_end)

    def to_view(self, obj: SceneObject, t: float, frames: int) -> SceneObject:
        """The object as the camera sees it at frame ``t``: view pixels, scaled radius."""
        centre, zoom = self.at(t, frames)
        xy = (np.asarray(obj.center_xy) - centre) * zoom + _VIEW_CENTRE
        return replace(obj, center_xy=(float(xy[0]), float(xy[1])),
                       radius_px=obj.radius_px * zoom)


@dataclass(frozen=True)
class ClipFrame:
    """One rendered frame of a clip.

    Attributes:
        image_rgb: (480, 640, 3) uint8.
        masks: (N, 480, 640) bool, the visible pixels of each object (objects in front removed).
        visible_fraction: (N,) float, visible pixels / pixels of the whole object at this zoom.
    """

    image_rgb: np.ndarray
    masks: np.ndarray
    visible_fraction: np.ndarray


@dataclass(frozen=True)
class Clip:
    """A generated clip.

    Attributes:
        name: ``<kind>_<index>``.
        kind: one of CLIP_KINDS.
        seed, index: the clip's place in its series.
        frames: number of frames.
        camera: the camera path.
        movers: the objects, back to front (later ones hide earlier ones).
        target: index of the referred object in ``movers``.
        lookalike: index of the target's look-alike, -1 if none.
        text: a referring expression of the target on frame 0.
    """

    name: str
    kind: str
    seed: int
    index: int
    frames: int
    camera: Camera
    movers: tuple[Mover, ...]
    target: int
    lookalike: int
    text: str

    def __len__(self) -> int:
        return self.frames

    def view_objects(self, t: int) -> list[SceneObject]:
        """The objects in view pixels at frame ``t``, back to front."""
        return [self.camera.to_view(m.at(t), t, self.frames) for m in self.movers]

    def frame(self, t: int) -> ClipFrame:
        """Renders frame ``t`` (deterministic)."""
        if not 0 <= t < self.frames:
            raise IndexError(f'frame {t} of a {self.frames}-frame clip')
        world = _table(self.seed, self.index)
        centre, zoom = self.camera.at(t, self.frames)
        offset = _VIEW_CENTRE - zoom * centre
        warp = np.array([[zoom, 0.0, offset[0]], [0.0, zoom, offset[1]]], np.float32)
        image = cv2.warpAffine(world, warp, (WIDTH_PX, HEIGHT_PX), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        objects = self.view_objects(t)
        # the same colour jitter on every frame: one generator per clip, drawn in the same order
        shapes = render_objects(image, objects, np.random.default_rng([self.seed, self.index, 2]))
        noise = np.random.default_rng([self.seed, self.index, 3, t])
        image += 3.0 * noise.standard_normal(image.shape, dtype=np.float32)
        masks = visible_masks(shapes)
        whole = np.array([_whole_area_px(o) for o in objects], np.float64)
        return ClipFrame(np.clip(image, 0, 255).astype(np.uint8), masks,
                         masks.sum(axis=(1, 2)) / np.maximum(whole, 1.0))

    def __iter__(self):
        return (self.frame(t) for t in range(self.frames))


@functools.lru_cache(maxsize=4)
def _table(seed: int, index: int) -> np.ndarray:
    """The clip's whole table texture, (WORLD_HEIGHT_PX, WORLD_WIDTH_PX, 3) float32, read-only."""
    table = background(np.random.default_rng([seed, index, 1]), WORLD_HEIGHT_PX, WORLD_WIDTH_PX)
    table.flags.writeable = False
    return table


def visible_masks(shapes: np.ndarray) -> np.ndarray:
    """(N, H, W) bool whole shapes, back to front -> the pixels each one shows."""
    visible = shapes.copy()
    covered = np.zeros(shapes.shape[1:], bool)
    for i in range(len(shapes) - 1, -1, -1):
        visible[i] &= ~covered
        covered |= shapes[i]
    return visible


def _whole_area_px(obj: SceneObject) -> int:
    """Pixels of the whole object at its size, as if it were in the middle of the view."""
    return int(shape_mask(replace(obj, center_xy=tuple(_VIEW_CENTRE))).sum())


def min_frames(kinds=CLIP_KINDS) -> int:
    """The fewest frames a clip of each of ``kinds`` can have (a ``leave`` clip holds the
    object's exit and its frames out of view)."""
    return max(LEAVE_TAIL_FRAMES + 6 if kind == 'leave' else 4 for kind in kinds)


def make_clip(seed: int, index: int, kind: str | None = None,
              frames: int = DEFAULT_FRAMES) -> Clip:
    """Clip ``index`` of series ``seed`` (its kind cycles through CLIP_KINDS unless given)."""
    kind = kind or CLIP_KINDS[index % len(CLIP_KINDS)]
    if kind not in CLIP_KINDS:
        raise ValueError(f'kind must be one of {", ".join(CLIP_KINDS)}, not {kind!r}')
    if frames < min_frames((kind,)):
        raise ValueError(f'a {kind} clip needs at least {min_frames((kind,))} frames, not '
                         f'{frames}')
    for attempt in range(100):
        rng = np.random.default_rng([seed, index, 0, attempt])
        clip = _BUILDERS[kind](rng, seed, index, frames)
        if clip is not None and _valid(clip):
            return clip
    raise RuntimeError(f'could not lay out clip {index} ({kind}) of seed {seed}')


def make_clips(seed: int = SEQUENCE_SEED, count: int = 10, frames: int = DEFAULT_FRAMES,
               kinds: tuple[str, ...] = CLIP_KINDS) -> list[Clip]:
    """``count`` clips of ``seed``, the kinds taken in turn."""
    return [make_clip(seed, i, kinds[i % len(kinds)], frames) for i in range(count)]


# ------------------------------------------------------------------------------- the layouts
def _object(rng: np.random.Generator, shape: str, colour: str, size: str,
            xy: tuple[float, float]) -> SceneObject:
    return SceneObject(shape, colour, size, (float(xy[0]), float(xy[1])),
                       float(rng.uniform(*RADIUS_RANGE_PX[size])), float(rng.uniform(-18, 18)))


def _target_look(rng: np.random.Generator) -> tuple[str, str, str]:
    return (SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))],
            ('small', 'big')[rng.integers(2)])


def _clip(kind, seed, index, frames, camera, dynamic, target, lookalike, rng, text=None):
    """Adds 2-4 static distractors (not the target's look) around the dynamic objects."""
    movers = list(dynamic)
    look = (movers[target].obj.shape, movers[target].obj.colour)
    for _ in range(int(rng.integers(2, 5))):
        for _ in range(200):
            shape, colour, size = _target_look(rng)
            if (shape, colour) == look:
                continue
            xy = _in_some_view(rng, camera, frames)
            candidate = Mover(_object(rng, shape, colour, size, xy))
            if all(_apart(candidate, other, frames) for other in movers):
                movers.insert(0, candidate)           # distractors stand at the back
                target, lookalike = target + 1, lookalike + 1 if lookalike >= 0 else -1
                break
    obj = movers[target].obj
    text = text or f'the {obj.colour} {obj.shape}'
    return Clip(f'{kind}_{index:03d}', kind, seed, index, frames, camera, tuple(movers), target,
                lookalike, text)


def _in_some_view(rng: np.random.Generator, camera: Camera, frames: int) -> np.ndarray:
    """A world point the camera sees at a random frame."""
    centre, zoom = camera.at(float(rng.integers(frames)), frames)
    return centre + rng.uniform(-1, 1, 2) * _VIEW_CENTRE / zoom


def _apart(a: Mover, b: Mover, frames: int) -> bool:
    """True if the two never come closer than their radii plus a gap."""
    for t in range(0, frames, 2):
        oa, ob = a.at(t), b.at(t)
        distance = np.hypot(oa.center_xy[0] - ob.center_xy[0], oa.center_xy[1] - ob.center_xy[1])
        if distance < oa.radius_px + ob.radius_px + _GAP_PX:
            return False
    return True


def _in_world_middle(rng: np.random.Generator, spread: float = 120.0) -> tuple[float, float]:
    return (WORLD_WIDTH_PX / 2 + rng.uniform(-spread, spread),
            WORLD_HEIGHT_PX / 2 + rng.uniform(-spread * 0.6, spread * 0.6))


def _pan(rng, seed, index, frames):
    shape, colour, size = _target_look(rng)
    target = Mover(_object(rng, shape, colour, size, _in_world_middle(rng)))
    tx, ty = target.obj.center_xy
    angle = rng.uniform(0, 2 * np.pi)
    reach = rng.uniform(110, 170)
    start = (tx - reach * np.cos(angle), ty - reach * np.sin(angle) * 0.6)
    end = (tx + reach * np.cos(angle), ty + reach * np.sin(angle) * 0.6)
    return _clip('pan', seed, index, frames, Camera(start, end), [target], 0, -1, rng)


def _zoom(rng, seed, index, frames):
    shape, colour, size = _target_look(rng)
    target = Mover(_object(rng, shape, colour, 'small' if rng.random() < 0.7 else size,
                           _in_world_middle(rng)))
    tx, ty = target.obj.center_xy
    start = (tx + rng.uniform(-90, 90), ty + rng.uniform(-60, 60))
    end = (tx + rng.uniform(-50, 50), ty + rng.uniform(-40, 40))
    zooms = (1.0, 1.5) if rng.random() < 0.5 else (1.5, 1.0)
    camera = Camera(start, end, *zooms)
    return _clip('zoom', seed, index, frames, camera, [target], 0, -1, rng)


def _moving(rng, seed, index, frames):
    shape, colour, size = _target_look(rng)
    speed = rng.uniform(3.0, 5.0)
    angle = rng.uniform(0, 2 * np.pi)
    velocity = (speed * np.cos(angle), speed * np.sin(angle) * 0.7)
    mid = np.array(_in_world_middle(rng, 40.0))
    start = mid - np.asarray(velocity) * (frames - 1) / 2
    target = Mover(_object(rng, shape, colour, size, start), velocity, rng.uniform(-1.5, 1.5))
    drift = rng.uniform(-60, 60, 2)
    camera = Camera(tuple(mid - drift), tuple(mid + drift))
    return _clip('moving', seed, index, frames, camera, [target], 0, -1, rng)


def _leave(rng, seed, index, frames):
    """The camera pans so that the target leaves the view ``LEAVE_TAIL_FRAMES`` before the end."""
    shape, colour, size = _target_look(rng)
    target = Mover(_object(rng, shape, colour, size, _in_world_middle(rng, 60.0)))
    tx, ty = target.obj.center_xy
    direction = 1.0 if rng.random() < 0.5 else -1.0      # +1: the target leaves on the left
    start_x = tx + direction * rng.uniform(90, 150)       # the target sits off-centre at first
    gone_at = frames - LEAVE_TAIL_FRAMES                   # first frame without the target
    distance = WIDTH_PX / 2 + target.obj.radius_px + 2.0 - abs(start_x - tx)
    end_x = start_x + direction * distance * (frames - 1) / (gone_at - 0.5)
    y = ty + rng.uniform(-60, 60)
    camera = Camera((start_x, y), (end_x, y + rng.uniform(-30, 30)))
    return _clip('leave', seed, index, frames, camera, [target], 0, -1, rng)


def _lookalike(rng, seed, index, frames):
    """A twin of the target slides past it, from one side to the other, just behind it or (in
    every other clip of the series) just in front, hiding part of it."""
    shape, colour, size = _target_look(rng)
    target_xy = np.array(_in_world_middle(rng, 60.0))
    target = _object(rng, shape, colour, size, target_xy)
    twin_radius = target.radius_px
    side = 1.0 if rng.random() < 0.5 else -1.0            # +1: the twin starts on the right
    # rows apart by less than the radii: the twin passes partly behind the target
    dy = (rng.uniform(0.55, 0.8) * 2 * twin_radius) * (1.0 if rng.random() < 0.5 else -1.0)
    travel = 2 * (2 * twin_radius + 120.0)
    start = target_xy + np.array([side * travel / 2, dy])
    velocity = (-side * travel / (frames - 1), 0.0)
    twin = Mover(replace(target, center_xy=(float(start[0]), float(start[1])),
                         angle_deg=float(rng.uniform(-18, 18))), velocity)
    camera_mid = target_xy + rng.uniform(-50, 50, 2)
    drift = rng.uniform(-40, 40, 2)
    camera = Camera(tuple(camera_mid - drift), tuple(camera_mid + drift))
    place = 'right' if side < 0 else 'left'                # the target on frame 0
    text = f'the {colour} {shape} on the {place}'
    clip = _clip('lookalike', seed, index, frames, camera, [twin, Mover(target)], 1, 0, rng,
                 text)
    if (index // len(CLIP_KINDS)) % 2:                     # every other one: the twin in front
        movers = list(clip.movers)
        movers[clip.target], movers[clip.lookalike] = twin, Mover(target)
        clip = replace(clip, movers=tuple(movers), target=clip.lookalike,
                       lookalike=clip.target)
    return clip


_BUILDERS = {'pan': _pan, 'zoom': _zoom, 'moving': _moving, 'leave': _leave,
             'lookalike': _lookalike}


def _valid(clip: Clip) -> bool:
    """The target is whole on frame 0 and stays whole unless it is meant to leave; a look-alike
    starts fully in view on the far side."""
    for t in range(clip.frames):
        target = clip.view_objects(t)[clip.target]
        inside = _inside_view(target)
        if t == 0 and not inside:
            return False
        if clip.kind != 'leave' and not inside:
            return False
    if clip.kind == 'leave':
        last = clip.view_objects(clip.frames - LEAVE_TAIL_FRAMES)[clip.target]
        return _outside_view(last)
    if clip.lookalike >= 0:
        return _inside_view(clip.view_objects(0)[clip.lookalike])
    return True


def _inside_view(obj: SceneObject, margin: float = 4.0) -> bool:
    x, y = obj.center_xy
    r = obj.radius_px + margin
    return r <= x <= WIDTH_PX - r and r <= y <= HEIGHT_PX - r


def _outside_view(obj: SceneObject) -> bool:
    x, y = obj.center_xy
    r = obj.radius_px
    return x < -r or x > WIDTH_PX + r or y < -r or y > HEIGHT_PX + r
