"""Seeded procedural table-top scenes: coloured toy shapes on textured backgrounds.

A scene is an RGB image, one exact instance mask per object (the pixels painted with the
object's colour) and the objects' attributes. Scenes contain near-duplicates on purpose: twins
(same colour, shape and size), same colour and shape in two sizes, same shape in two colours.
Scene ``index`` of seed ``seed`` and style ``style`` is always the same image
(``numpy.random.default_rng([seed, index])``), whatever else was generated before.

Rendering styles (:data:`STYLES`): ``shaded`` (640x480, wood/tile/cloth table, shaded objects,
soft shadows, sensor noise: the original demo world), ``flat``, ``poster``, ``varied``,
``outlined``, ``isometric`` and ``tabletop`` (flat colours on plain backgrounds, other canvas
sizes and palettes, ``varied`` drawing every choice anew per scene, ``outlined`` the same with
outlines, ``tabletop`` the same on a table in front of a wall: :mod:`hybridgl_ros.demo.styles`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH_PX, HEIGHT_PX = 640, 480
SHAPES = ('ball', 'cube', 'triangle', 'star', 'ring')
COLOURS = {
    'red': (205, 35, 35), 'green': (40, 160, 60), 'blue': (40, 80, 215),
    'yellow': (235, 205, 40), 'purple': (135, 55, 175), 'orange': (245, 130, 25)}
SIZES = ('small', 'big')
#: Radius of the circle around the object (pixels) for each size class.
RADIUS_RANGE_PX = {'small': (44, 54), 'big': (72, 86)}
#: Rendering styles; ``poster``, ``outlined`` and ``isometric`` are held out (see demo.styles).
STYLES = ('shaded', 'flat', 'poster', 'varied', 'outlined', 'isometric', 'tabletop')
TRAINING_STYLES = ('shaded', 'flat', 'varied', 'tabletop')
#: Never trained or tuned on: figures on them estimate renderers this project does not have.
HELD_OUT_STYLES = ('poster', 'outlined', 'isometric')
#: Neutral table colours (RGB), far from the object colours.
TABLE_COLOURS = ((150, 150, 150), (190, 180, 160), (120, 95, 70), (80, 85, 95), (200, 200, 195),
                 (160, 140, 115))
_MIN_GAP_PX = 14
_MARGIN_PX = 6


@dataclass(frozen=True)
class SceneObject:
    """One object: what it is and where.

    Attributes:
        shape: one of SHAPES.
        colour: a key of COLOURS.
        size: 'small' or 'big'.
        center_xy: (x, y) pixel centre.
        radius_px: radius of its bounding circle in pixels.
        angle_deg: in-plane rotation in degrees.
        form: how the shape is drawn when a style has variants: '' = the default silhouette
            (a cube is a hexagon: three visible faces), 'square' = a cube seen face-on.
    """

    shape: str
    colour: str
    size: str
    center_xy: tuple[float, float]
    radius_px: float
    angle_deg: float
    form: str = ''


@dataclass(frozen=True)
class Scene:
    """One rendered scene.

    Attributes:
        image_rgb: (480, 640, 3) uint8.
        masks: (N, 480, 640) bool, one per object, disjoint.
        objects: the N objects, in the order of ``masks``.
    """

    image_rgb: np.ndarray
    masks: np.ndarray
    objects: tuple[SceneObject, ...]


def make_scene(seed: int, index: int, style: str = 'shaded', object_scale: float = 1.0,
               any_angle: bool = False) -> Scene:
    """Renders scene ``index`` of the series ``seed`` in ``style`` (deterministic).

    ``object_scale`` multiplies every object's size (the canvas stays): another camera distance
    or another renderer's proportions. At 1 the scene is the series' own, to the last pixel.
    ``any_angle`` turns every object by an angle of its own, drawn from the whole circle (a
    camera looking down on objects that lie any way round; the series' own angles are within
    ±18°); the angles come from a generator of their own, so all else stays the series' own.
    The ``isometric`` style's cubes stay as drawn (their lit faces say which way is up).
    """
    if style not in STYLES:
        raise ValueError(f'unknown scene style {style!r}; expected one of {STYLES}')
    if not 0.2 <= object_scale <= 2.0:
        raise ValueError(f'object_scale must be within 0.2-2, not {object_scale}')
    rng = np.random.default_rng([seed, index])
    turn = np.random.default_rng([seed, index, 11]) if any_angle else None
    if style != 'shaded':
        from hybridgl_ros.demo.styles import render_plain

        return render_plain(rng, style, object_scale, turn)
    specs = sample_specs(rng)
    objects = place(rng, specs, (WIDTH_PX, HEIGHT_PX), scaled(RADIUS_RANGE_PX, object_scale),
                    turn)
    image = background(rng)
    masks = render_objects(image, objects, rng)
    image += 3.0 * rng.standard_normal(image.shape, dtype=np.float32)
    image_rgb = np.clip(image, 0, 255).astype(np.uint8)
    return Scene(image_rgb, masks, tuple(objects))


def at_working_size(scene: Scene, max_pixels: int) -> Scene:
    """The scene as the pipeline's default mode sees it: the frame downscaled to at most
    ``max_pixels`` pixels (``core.resolution``, area averaging), each mask to the pixels it
    covers more than half of. As is with ``max_pixels`` 0 or a frame within the budget."""
    from dataclasses import replace

    from hybridgl_ros.core.resolution import downscale, working_size

    size = working_size(*scene.image_rgb.shape[:2], max_pixels)
    if size == tuple(scene.image_rgb.shape[:2]):
        return scene
    masks = np.stack([cv2.resize(m.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA)
                      > 0.5 for m in scene.masks])
    return replace(scene, image_rgb=downscale(scene.image_rgb, size), masks=masks)


def render_objects(image: np.ndarray, objects, rng: np.random.Generator) -> np.ndarray:
    """Draws the objects' shadows, then paints the objects in order (later ones in front).

    Args:
        image: (480, 640, 3) float32 picture, drawn on in place.
        objects: the SceneObjects, in view pixels.
        rng: draws each object's colour jitter, in order.

    Returns:
        (N, 480, 640) bool: each object's whole shape (not reduced by the objects in front).
    """
    masks = np.zeros((len(objects), HEIGHT_PX, WIDTH_PX), bool)
    for i, obj in enumerate(objects):
        masks[i] = shape_mask(obj)
        _shadow(image, masks[i], obj)
    for i, obj in enumerate(objects):
        _paint(rng, image, masks[i], obj)
    return masks


def sample_specs(rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(shape, colour, size) of 2-6 objects with deliberate near-duplicates."""
    count = int(rng.integers(2, 7))
    colours = list(COLOURS)
    specs: list[tuple[str, str, str]] = []
    while len(specs) < count:
        spec = (SHAPES[rng.integers(len(SHAPES))], colours[rng.integers(len(colours))],
                SIZES[rng.integers(2)])
        specs.append(spec)
        roll = rng.random()
        if len(specs) < count and roll < 0.3:
            specs.append(spec)                                    # identical twin
        elif len(specs) < count and roll < 0.5:
            other = 'big' if spec[2] == 'small' else 'small'
            specs.append((spec[0], spec[1], other))               # same, other size
        elif len(specs) < count and roll < 0.7:
            specs.append((spec[0], colours[rng.integers(len(colours))], spec[2]))
    return specs


def scaled(radius_range: dict[str, tuple[float, float]], factor: float
           ) -> dict[str, tuple[float, float]]:
    """The size classes' radius ranges times ``factor``."""
    return {k: (lo * factor, hi * factor) for k, (lo, hi) in radius_range.items()}


def place(rng: np.random.Generator, specs: list[tuple[str, str, str]],
          canvas_wh: tuple[int, int], radius_range_px: dict[str, tuple[float, float]],
          turn: np.random.Generator | None = None) -> list[SceneObject]:
    """Non-overlapping positions; big objects first; an object that does not fit is dropped.

    Args:
        canvas_wh: (width, height) of the image in pixels.
        radius_range_px: size class -> (low, high) radius of the bounding circle in pixels.
        turn: if given, each object is turned further by an angle drawn from it in [0, 360)
            (``make_scene``'s ``any_angle``); ``rng``'s draws stay the same.
    """
    width, height = canvas_wh
    order = sorted(range(len(specs)), key=lambda i: specs[i][2] != 'big')
    placed: dict[int, SceneObject] = {}
    for i in order:
        shape, colour, size = specs[i]
        radius = float(rng.uniform(*radius_range_px[size]))
        for _ in range(200):
            x = float(rng.uniform(radius + _MARGIN_PX, width - radius - _MARGIN_PX))
            y = float(rng.uniform(radius + _MARGIN_PX, height - radius - _MARGIN_PX))
            if all(np.hypot(x - o.center_xy[0], y - o.center_xy[1])
                   > radius + o.radius_px + _MIN_GAP_PX for o in placed.values()):
                angle = float(rng.uniform(-18, 18))
                if turn is not None:
                    angle += float(turn.uniform(0.0, 360.0))
                placed[i] = SceneObject(shape, colour, size, (x, y), radius, angle)
                break
    return [placed[i] for i in sorted(placed)]


def background(rng: np.random.Generator, height: int = HEIGHT_PX, width: int = WIDTH_PX
               ) -> np.ndarray:
    """(height, width, 3) float32 table texture: base colour, low-frequency blotches, grain."""
    base = np.array(TABLE_COLOURS[rng.integers(len(TABLE_COLOURS))], np.float32)
    base = (base + rng.uniform(-12, 12, 3)).astype(np.float32)
    blotch = cv2.resize(rng.normal(0, 1, (6, 8)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    kind = int(rng.integers(3))
    if kind == 0:                                                 # wood grain
        phase = rng.uniform(0, 2 * np.pi)
        period = rng.uniform(9, 25)
        texture = 9 * np.sin(yy / np.float32(period) + 2.5 * blotch + np.float32(phase))
    elif kind == 1:                                               # tiles
        tile = int(rng.integers(40, 90))
        texture = 7.0 * (((yy // tile) + (xx // tile)) % 2) - 3.5
        texture = texture - 25 * ((yy % tile < 2) | (xx % tile < 2))
    else:                                                         # cloth
        fine = rng.normal(0, 1, (height // 4, width // 4)).astype(np.float32)
        texture = 8 * cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR)
    light = 1.0 + 0.12 * (xx / width - 0.5) * np.float32(rng.uniform(-1, 1))
    shade = (texture + 10 * blotch) * light
    image = (base[None, None, :] * light[..., None] + shade[..., None]).astype(np.float32)
    return np.clip(image, 0, 255, out=image)


def shape_mask(obj: SceneObject, canvas_hw: tuple[int, int] = (HEIGHT_PX, WIDTH_PX),
               star_inner: float = 0.5, ring_hole: float = 0.5) -> np.ndarray:
    """(H, W) bool: the pixels of ``obj`` (no anti-aliasing, so image and mask agree).

    Args:
        canvas_hw: (height, width) of the image.
        star_inner: inner radius of a star as a fraction of its outer radius.
        ring_hole: radius of a ring's hole as a fraction of its outer radius.
    """
    mask = np.zeros(canvas_hw, np.uint8)
    cx, cy = obj.center_xy
    r = obj.radius_px
    if obj.shape in ('ball', 'ring'):
        cv2.circle(mask, (round(cx), round(cy)), round(r), 1, -1)
        if obj.shape == 'ring':
            cv2.circle(mask, (round(cx), round(cy)), round(ring_hole * r), 0, -1)
        return mask.astype(bool)
    points = outline(obj, star_inner) + np.array([cx, cy])
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def outline(obj: SceneObject, star_inner: float = 0.5) -> np.ndarray:
    """(K, 2) float polygon of a polygonal shape centred on the origin, y down."""
    shape, radius, angle_deg = obj.shape, obj.radius_px, obj.angle_deg
    if shape == 'cube' and obj.form == 'square':
        angles = np.deg2rad(angle_deg + 45 + np.arange(4) * 90)
        radii = np.full(4, 0.9 * radius)
    elif shape == 'triangle':
        angles = np.deg2rad(angle_deg - 90 + np.arange(3) * 120)
        radii = np.full(3, radius)
    elif shape == 'star':
        angles = np.deg2rad(angle_deg - 90 + np.arange(10) * 36)
        radii = np.where(np.arange(10) % 2 == 0, radius, star_inner * radius)
    else:                                                         # cube: a hexagon silhouette
        angles = np.deg2rad(angle_deg + 30 + np.arange(6) * 60)
        radii = np.full(6, 0.95 * radius)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _shadow(image: np.ndarray, mask: np.ndarray, obj: SceneObject) -> None:
    """Darkens the table under a soft shadow offset down-right (outside every mask later)."""
    shift = max(4, round(0.15 * obj.radius_px))
    sigma = 0.2 * obj.radius_px
    reach = int(obj.radius_px + shift + 3 * sigma + 2)
    cx, cy = round(obj.center_xy[0]), round(obj.center_xy[1])
    y0, y1 = max(0, cy - reach), min(HEIGHT_PX, cy + reach)
    x0, x1 = max(0, cx - reach), min(WIDTH_PX, cx + reach)
    if y1 <= y0 or x1 <= x0:                                      # out of the picture
        return
    moved = np.zeros((HEIGHT_PX, WIDTH_PX), np.float32)
    moved[shift:, shift // 2:] = mask[:-shift, :WIDTH_PX - shift // 2]
    soft = cv2.GaussianBlur(moved[y0:y1, x0:x1], (0, 0), sigma)
    image[y0:y1, x0:x1] *= (1.0 - 0.35 * soft)[..., None]


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray,
           obj: SceneObject) -> None:
    """Fills the mask with the object's colour and a simple light model for its shape."""
    colour = np.array(COLOURS[obj.colour], np.float32) + rng.uniform(-14, 14, 3)
    ys, xs = np.nonzero(mask)
    dx = (xs - obj.center_xy[0]) / obj.radius_px
    dy = (ys - obj.center_xy[1]) / obj.radius_px
    if obj.shape in ('ball', 'ring'):
        # A sphere (or torus) lit from the upper left: bright spot, darker rim.
        light = 1.15 - 0.45 * np.hypot(dx + 0.35, dy + 0.35)
    elif obj.shape == 'cube':
        # Three faces of an isometric cube: top bright, left mid, right dark.
        angle = np.rad2deg(np.arctan2(dy, dx)) - obj.angle_deg
        angle = np.mod(angle, 360)
        light = np.where((angle >= 210) & (angle < 330), 1.15,
                         np.where((angle >= 90) & (angle < 210), 0.9, 0.7))
    else:
        light = 1.05 - 0.2 * (dy + 1) / 2
    image[ys, xs] = np.clip(colour[None, :] * light[:, None], 0, 255)
