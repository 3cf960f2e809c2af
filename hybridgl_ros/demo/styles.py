"""Plain rendering styles of the demo scenes: flat colours on plain backgrounds (and on a
table in front of a wall: ``tabletop``).

The demo CLIP first knew one renderer (:mod:`hybridgl_ros.demo.scenes`' ``shaded`` style), so
anything drawn otherwise — flat fills, a plain backdrop, a cube drawn as a square, another
palette, another canvas — was foreign to it. More styles:

* ``flat`` (trained on): canvas 640x480, 512x512 or 768x512; one plain background colour
  (neutral, light or dark, a faint gradient); flat object colours drawn around two anchor
  palettes per colour name (this project's and the usual named-colour RGBs) with jitter; a cube
  is a hexagon or a square; no shading, no shadow, little noise.
* ``poster`` (held out: never used in training or to choose any setting): canvas 600x600 or
  800x600, another palette (matplotlib's tab10 colours), every shape with a dark outline and
  anti-aliased edges, cubes drawn as squares, thinner star arms, a wider ring hole, object
  sizes relative to the canvas. Figures on it estimate how the models and settings carry over
  to a renderer this project does not have.
* ``varied`` (trained on, by the CLIP's fifth stage): flat shapes as a renderer this project
  does not have might draw them, a new draw per scene: any canvas from 480x400 to 896x704; a
  plain background of any low-saturation colour and brightness, a gradient of up to 40 levels;
  object colours anywhere in a hue, saturation and value range per colour name
  (:data:`VARIED_HUES`); star and ring proportions from a range (inner radius 0.38-0.62, hole
  0.38-0.66); a cube a hexagon or a square; hard or anti-aliased edges; noise of 0-4 levels.
  No outlines (the poster style's stay unseen; its star and ring proportions and its six
  colours lie within these ranges, so the poster style is held out by its outlines, canvases
  and the combination, no more by its palette). The ranges were widened once (orange to
  40°, purple to saturation 1) after a first draft of the isometric style showed its CSS
  orange and purple outside them.
* ``tabletop`` (trained on, by the SAM's fifth stage): a ``varied`` scene (the same objects)
  on a table seen at an angle in front of a wall: the ``varied`` backdrop is the wall, and a
  trapezoid from a far edge at 5-40 % of the canvas's height down past its bottom (or to a
  darker front edge) is the table, textured as the ``shaded`` style's tables (wood grain,
  tiles, cloth) around a colour of its own, half of them wood tones (:data:`TABLE_HSV`), darker
  toward the far edge; each object casts a soft shadow (not part of its mask). Objects may
  stand across the far edge, as a camera sees what stands at the back of a table. The first
  four SAM stages knew one background per scene; on a table in front of a wall they proposed
  pieces of the table (docs/measurements.md "Tables seen at an angle").
* ``outlined`` (held out, as ``poster``: no shipped stage of the demo models trained on it): a
  ``varied`` scene, then every object outlined along the inside of its border, 1-4 px wide
  (:data:`OUTLINE_WIDTHS_PX`), in one ink per scene: a dark neutral grey (half the scenes,
  :data:`NEUTRAL_INK_SHARE`) or a darker shade of each object's own colour; anti-aliased or
  hard. Renderers commonly outline flat shapes (a plotting library's patches have an edge by
  default); the poster style has one kind of outline, this one many. Except along the objects'
  borders, a scene is its ``varied`` scene to the last pixel.
* ``isometric`` (held out, as ``poster``): another renderer's conventions: canvas 1024x768,
  640x640 or 720x540; a plain white, grey, pale blue, linen, slate or dark slate background; CSS
  named colours (:data:`CSS_PALETTE`: 'orange' is CSS orange, dark orange or coral, 'purple'
  purple, dark orchid or slate blue); a cube drawn as an isometric cube, three faces lit
  differently; thinner star arms (inner radius 0.42), a wider ring hole (0.6); edges
  anti-aliased by drawing at 4x and averaging; no noise; objects 3-8 % smaller than the flat
  style's. Its star and ring proportions lie within the varied style's ranges; its lit cube
  faces, two of its colours (coral, slate blue) and its supersampled edges do not.

Objects, their sizes and look-alikes are sampled as in the shaded style
(:func:`~hybridgl_ros.demo.scenes.sample_specs`); sizes scale with the canvas.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from hybridgl_ros.demo.scenes import (
    Scene, SceneObject, background, place, sample_specs, scaled, shape_mask)

#: Radius of the bounding circle per size class, as a fraction of the canvas' shorter side
#: (the shaded style's 44-54 and 72-86 px at 480 rows).
RADIUS_FRACTION = {'small': (0.092, 0.1125), 'big': (0.15, 0.18)}
#: Per colour name, the anchor RGBs flat objects are drawn around (this project's palette and
#: the common named-colour values).
FLAT_PALETTE = {
    'red': ((205, 35, 35), (230, 20, 20), (200, 0, 0)),
    'green': ((40, 160, 60), (0, 150, 0), (50, 180, 50)),
    'blue': ((40, 80, 215), (0, 0, 230), (30, 60, 180)),
    'yellow': ((235, 205, 40), (250, 230, 0), (240, 215, 70)),
    'purple': ((135, 55, 175), (128, 0, 128), (150, 70, 200)),
    'orange': ((245, 130, 25), (255, 150, 0), (240, 120, 40))}
#: The held-out poster palette (matplotlib tab10).
POSTER_PALETTE = {
    'red': (214, 39, 40), 'green': (44, 160, 44), 'blue': (31, 119, 180),
    'yellow': (228, 206, 38), 'purple': (148, 103, 189), 'orange': (255, 127, 14)}
FLAT_BACKGROUNDS = ((245, 245, 245), (205, 205, 205), (150, 150, 150), (70, 70, 70),
                    (225, 215, 190), (195, 205, 220), (35, 35, 40), (180, 170, 150))
POSTER_BACKGROUNDS = ((255, 255, 255), (250, 246, 235), (228, 228, 228), (47, 54, 64))
FLAT_CANVASES = ((640, 480), (512, 512), (768, 512))
#: The held-out isometric style's colours per name (CSS named colours), backgrounds, canvases
#: and radius fractions (of the canvas' shorter side).
CSS_PALETTE = {
    'red': ((220, 20, 60), (255, 0, 0), (178, 34, 34)),
    'green': ((34, 139, 34), (0, 128, 0), (60, 179, 113)),
    'blue': ((65, 105, 225), (0, 0, 255), (30, 144, 255)),
    'yellow': ((255, 215, 0), (255, 255, 0), (238, 221, 60)),
    'purple': ((128, 0, 128), (153, 50, 204), (106, 90, 205)),
    'orange': ((255, 165, 0), (255, 140, 0), (255, 127, 80))}
ISOMETRIC_BACKGROUNDS = ((255, 255, 255), (240, 240, 240), (220, 230, 240), (47, 79, 79),
                         (250, 240, 230), (112, 128, 144))
ISOMETRIC_CANVASES = ((1024, 768), (640, 640), (720, 540))
ISOMETRIC_RADIUS_FRACTION = {'small': (0.085, 0.105), 'big': (0.145, 0.17)}
#: Supersampling factor of the isometric style's edges; its star inner radius and ring hole
#: (fractions of the outer radius).
_SUPERSAMPLE = 4
ISOMETRIC_STAR_INNER, ISOMETRIC_RING_HOLE = 0.42, 0.6
POSTER_CANVASES = ((600, 600), (800, 600))
#: Per colour name of the varied style: hue range (degrees, may wrap past 360), saturation
#: range and value range (HSV) its objects are drawn from.
VARIED_HUES = {
    'red': ((348, 370), (0.6, 1.0), (0.55, 1.0)),
    'orange': ((21, 40), (0.7, 1.0), (0.85, 1.0)),
    'yellow': ((47, 62), (0.65, 1.0), (0.85, 1.0)),
    'green': ((92, 150), (0.5, 1.0), (0.45, 0.9)),
    'blue': ((203, 242), (0.55, 1.0), (0.55, 1.0)),
    'purple': ((265, 305), (0.45, 1.0), (0.4, 0.9))}


#: The tabletop style's table: its far edge's height and its far and near widths (shares of
#: the canvas's height and width), and its colour's hue, saturation and value ranges, one drawn
#: per scene: wood tones, or any hue at up to 0.6 saturation.
TABLE_FAR_EDGE = (0.05, 0.4)
TABLE_FAR_WIDTH = (0.45, 1.3)
TABLE_NEAR_WIDTH = (0.9, 1.8)
TABLE_HSV = (((15, 45), (0.2, 0.6), (0.3, 0.85)), ((0, 360), (0.0, 0.6), (0.15, 0.95)))

#: The outlined style's outline width inside the object (pixels on its canvas, both ends
#: drawn) and the share of its scenes whose outlines are a dark neutral ink (the others a
#: darker shade of each object's own colour, as the poster style's).
OUTLINE_WIDTHS_PX = (1, 4)
NEUTRAL_INK_SHARE = 0.5


def render_plain(rng: np.random.Generator, style: str, object_scale: float = 1.0,
                 turn: np.random.Generator | None = None) -> Scene:
    """Renders one scene of a plain style ('flat', 'poster', 'varied', 'outlined' or
    'isometric') from ``rng``, every object's size times ``object_scale``, each turned further
    by an angle drawn from ``turn`` if given (``scenes.place``)."""
    if style in ('varied', 'tabletop'):
        return _render_varied(rng, object_scale, turn, tabletop=style == 'tabletop')
    if style == 'outlined':
        return _render_outlined(rng, object_scale, turn)
    if style == 'isometric':
        return _render_isometric(rng, object_scale, turn)
    poster = style == 'poster'
    canvases = POSTER_CANVASES if poster else FLAT_CANVASES
    width, height = canvases[rng.integers(len(canvases))]
    radius_range = scaled(RADIUS_FRACTION, min(width, height) * object_scale)
    objects = place(rng, sample_specs(rng), (width, height), radius_range, turn)
    objects = [_with_form(rng, obj, poster) for obj in objects]
    image = _plain_background(rng, (height, width), POSTER_BACKGROUNDS if poster
                              else FLAT_BACKGROUNDS)
    star_inner, ring_hole = (0.4, 0.58) if poster else (0.5, 0.5)
    masks = np.zeros((len(objects), height, width), bool)
    for i, obj in enumerate(objects):
        masks[i] = shape_mask(obj, (height, width), star_inner, ring_hole)
        colour = _object_colour(rng, obj.colour, poster)
        if poster:
            _draw_outlined(image, masks[i], colour)
        else:
            image[masks[i]] = colour
    image += float(rng.uniform(0.0, 2.0)) * rng.standard_normal(image.shape, dtype=np.float32)
    return Scene(np.clip(image, 0, 255).astype(np.uint8), masks, tuple(objects))


def _render_varied(rng: np.random.Generator, object_scale: float,
                   turn: np.random.Generator | None, tabletop: bool = False) -> Scene:
    """The ``varied`` style (module docstring): every rendering choice drawn anew; with
    ``tabletop``, on a table in front of a wall, each object casting a soft shadow."""
    width, height = (int(16 * rng.integers(30, 57)), int(16 * rng.integers(25, 45)))
    radius_range = scaled(RADIUS_FRACTION, min(width, height) * object_scale)
    objects = place(rng, sample_specs(rng), (width, height), radius_range, turn)
    objects = [_with_form(rng, obj, False) for obj in objects]
    if tabletop:
        image = _tabletop_background(rng, (height, width))
        shadow = _Shadow.draw(rng, min(width, height))
    else:
        image = _varied_background(rng, (height, width))
    star_inner, ring_hole = float(rng.uniform(0.38, 0.62)), float(rng.uniform(0.38, 0.66))
    soft = rng.random() < 0.5
    masks = np.zeros((len(objects), height, width), bool)
    for i, obj in enumerate(objects):
        masks[i] = shape_mask(obj, (height, width), star_inner, ring_hole)
        colour = _varied_colour(rng, obj.colour)
        if tabletop:
            shadow.cast(image, masks[i])
        if soft:                              # anti-aliased edges; the mask stays the hard one
            alpha = cv2.GaussianBlur(masks[i].astype(np.float32), (0, 0), 0.8)[..., None]
            image[:] = image * (1.0 - alpha) + colour[None, None, :] * alpha
        else:
            image[masks[i]] = colour
    image += float(rng.uniform(0.0, 4.0)) * rng.standard_normal(image.shape, dtype=np.float32)
    return Scene(np.clip(image, 0, 255).astype(np.uint8), masks, tuple(objects))


def _render_outlined(rng: np.random.Generator, object_scale: float,
                     turn: np.random.Generator | None) -> Scene:
    """The ``outlined`` style (module docstring): a ``varied`` scene drawn from ``rng``, then
    every object outlined along the inside of its border with one ink and width per scene."""
    scene = _render_varied(rng, object_scale, turn)
    width = int(rng.integers(OUTLINE_WIDTHS_PX[0], OUTLINE_WIDTHS_PX[1] + 1))
    neutral = rng.random() < NEUTRAL_INK_SHARE
    grey = float(rng.uniform(15.0, 80.0)) + rng.uniform(-6.0, 6.0, 3)
    shade = float(rng.uniform(0.2, 0.6))
    soft = rng.random() < 0.5
    image = scene.image_rgb.astype(np.float32)
    for mask in scene.masks:
        ink = grey if neutral else shade * np.median(image[mask], axis=0)
        _draw_outline(image, mask, ink, 2 * width - 1, soft)
    return replace(scene, image_rgb=np.clip(np.round(image), 0, 255).astype(np.uint8))


def _render_isometric(rng: np.random.Generator, object_scale: float,
                      turn: np.random.Generator | None) -> Scene:
    """The held-out ``isometric`` style (module docstring), drawn at ``_SUPERSAMPLE`` times
    the canvas and averaged down; a mask is the pixels its object covers more than half of."""
    width, height = ISOMETRIC_CANVASES[rng.integers(len(ISOMETRIC_CANVASES))]
    radius_range = scaled(ISOMETRIC_RADIUS_FRACTION, min(width, height) * object_scale)
    objects = place(rng, sample_specs(rng), (width, height), radius_range, turn)
    background = ISOMETRIC_BACKGROUNDS[rng.integers(len(ISOMETRIC_BACKGROUNDS))]
    big = np.empty((height * _SUPERSAMPLE, width * _SUPERSAMPLE, 3), np.float32)
    big[:] = np.array(background, np.float32)
    coverage = []
    for obj in objects:
        colour = CSS_PALETTE[obj.colour][rng.integers(3)]
        coverage.append(_draw_isometric(big, obj, np.array(colour, np.float32)))
    image = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
    masks = np.stack([cv2.resize(c.astype(np.float32), (width, height),
                                 interpolation=cv2.INTER_AREA) > 0.5 for c in coverage])
    return Scene(np.clip(image, 0, 255).astype(np.uint8), masks, tuple(objects))


def _draw_isometric(canvas: np.ndarray, obj: SceneObject, colour: np.ndarray) -> np.ndarray:
    """Draws ``obj`` on the supersampled ``canvas``; returns its (H, W) uint8 coverage. A cube is
    an upright hexagon (0.93 of the radius) with three faces lit differently; every other
    shape is ``scenes.shape_mask`` of the object at the supersampled scale, filled flat."""
    factor = _SUPERSAMPLE
    cx, cy = obj.center_xy[0] * factor, obj.center_xy[1] * factor
    big = replace(obj, center_xy=(cx, cy), radius_px=obj.radius_px * factor)
    if obj.shape != 'cube':
        covered = shape_mask(big, canvas.shape[:2], ISOMETRIC_STAR_INNER, ISOMETRIC_RING_HOLE)
        canvas[covered] = colour
        return covered.astype(np.uint8)
    covered = np.zeros(canvas.shape[:2], np.uint8)
    angles = np.deg2rad(30 + np.arange(6) * 60)   # vertices at 30, 90, ..., 330 degrees, y down
    radius = 0.93 * big.radius_px
    points = np.round(np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
                      ).astype(np.int32)
    cv2.fillPoly(covered, [points], 1)
    middle = np.array((round(cx), round(cy)), np.int32)
    for corners, light in (((3, 4, 5), 1.25), ((1, 2, 3), 1.0), ((5, 0, 1), 0.7)):
        face = np.zeros_like(covered)
        cv2.fillPoly(face, [np.stack([points[i] for i in corners] + [middle])], 1)
        canvas[(face > 0) & (covered > 0)] = np.clip(colour * light, 0, 255)
    return covered


def _varied_background(rng: np.random.Generator, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32: any low-saturation colour, a linear gradient of up to 40 levels."""
    height, width = size_hw
    base = rng.uniform(15, 250) + rng.uniform(-22, 22, 3)
    direction = rng.uniform(-1, 1, 2).astype(np.float32)
    yy = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ramp = float(rng.uniform(0, 40)) * (direction[0] * xx + direction[1] * yy)
    return np.clip(base.astype(np.float32)[None, None, :] + ramp[..., None], 0, 255
                   ).astype(np.float32)


def _tabletop_background(rng: np.random.Generator, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32: the ``varied`` style's backdrop as a wall, and a table seen at an
    angle in front of it: a trapezoid from a far edge (:data:`TABLE_FAR_EDGE`) down past the
    canvas's bottom or to a darker front edge, wider near than far, textured as the shaded
    style's tables (wood grain, tiles or cloth) around a colour of its own (half of them wood
    tones, :data:`TABLE_HSV`), darker toward the far edge."""
    height, width = size_hw
    image = _varied_background(rng, size_hw)
    far_y = float(rng.uniform(*TABLE_FAR_EDGE)) * height
    near_y = float(rng.uniform(0.9, 1.15)) * height
    centre = float(rng.uniform(0.35, 0.65)) * width
    far_half = float(rng.uniform(*TABLE_FAR_WIDTH)) * width / 2
    near_half = max(far_half, float(rng.uniform(*TABLE_NEAR_WIDTH)) * width / 2)
    hues, saturations, values = TABLE_HSV[int(rng.integers(len(TABLE_HSV)))]
    hsv = np.array([[[(rng.uniform(*hues) % 360) / 2, 255 * rng.uniform(*saturations),
                      255 * rng.uniform(*values)]]], np.float32)
    colour = cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    texture = background(rng, height, width)
    table = texture - texture.mean(axis=(0, 1)) + colour.astype(np.float32)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    depth = (yy - far_y) / (near_y - far_y)              # 0 at the far edge, 1 at the near
    far_light = float(rng.uniform(0.8, 1.0))
    table *= (far_light + (1.0 - far_light) * np.clip(depth, 0, 1))[..., None]
    half = far_half + (near_half - far_half) * depth
    on_table = (depth >= 0) & (depth <= 1) & (np.abs(xx - centre) <= half)
    image[on_table] = table[on_table]
    front = (yy > near_y) & (yy <= near_y + 0.04 * height) & (np.abs(xx - centre) <= near_half)
    image[front] = 0.7 * colour.astype(np.float32)
    return np.clip(image, 0, 255, out=image)


@dataclass(frozen=True)
class _Shadow:
    """One scene's soft shadows (the tabletop style): each object darkens the table under a
    blurred copy of its mask, shifted away from the light."""

    alpha: float
    shift_xy: tuple[int, int]
    blur_px: float

    @classmethod
    def draw(cls, rng: np.random.Generator, side_px: int) -> '_Shadow':
        angle = float(rng.uniform(0, 2 * np.pi))
        length = float(rng.uniform(0.005, 0.03)) * side_px
        return cls(float(rng.uniform(0.0, 0.4)),
                   (int(round(length * np.cos(angle))), int(round(length * np.sin(angle)))),
                   float(rng.uniform(1.5, 6.0)))

    def cast(self, image: np.ndarray, mask: np.ndarray) -> None:
        """Darkens ``image`` in place under this shadow of ``mask`` (drawn before the object,
        so the object covers its own part of it). The shift wraps round the canvas (np.roll),
        so an object within the shift of a border (at most 3 % of the canvas's shorter side)
        also shades a sliver at the opposite border; the fifth SAM stage trained so."""
        if self.alpha <= 0:
            return
        moved = np.roll(mask.astype(np.float32), self.shift_xy[::-1], axis=(0, 1))
        shade = cv2.GaussianBlur(moved, (0, 0), self.blur_px)
        image *= (1.0 - self.alpha * shade)[..., None]


def _varied_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    """An RGB drawn from the colour name's HSV ranges (:data:`VARIED_HUES`)."""
    hues, saturations, values = VARIED_HUES[name]
    hsv = np.array([[[(rng.uniform(*hues) % 360) / 2, 255 * rng.uniform(*saturations),
                      255 * rng.uniform(*values)]]], np.float32)
    hsv = np.round(hsv).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _with_form(rng: np.random.Generator, obj: SceneObject, poster: bool) -> SceneObject:
    """A cube becomes a square always in the poster style, half the time in the flat one."""
    if obj.shape != 'cube' or not (poster or rng.random() < 0.5):
        return obj
    return SceneObject(obj.shape, obj.colour, obj.size, obj.center_xy, obj.radius_px,
                       obj.angle_deg, form='square')


def _plain_background(rng: np.random.Generator, size_hw: tuple[int, int],
                      colours: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """(H, W, 3) float32: one colour with a faint linear gradient."""
    height, width = size_hw
    base = np.array(colours[rng.integers(len(colours))], np.float32) + rng.uniform(-6, 6, 3)
    direction = rng.uniform(-1, 1, 2).astype(np.float32)
    yy = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ramp = 12.0 * (direction[0] * xx + direction[1] * yy)              # (H, W)
    return np.clip(base[None, None, :] + ramp[..., None], 0, 255).astype(np.float32)


def _object_colour(rng: np.random.Generator, name: str, poster: bool) -> np.ndarray:
    if poster:
        return np.array(POSTER_PALETTE[name], np.float32)
    anchors = FLAT_PALETTE[name]
    anchor = np.array(anchors[rng.integers(len(anchors))], np.float32)
    return np.clip(anchor + rng.uniform(-18, 18, 3), 0, 255).astype(np.float32)


def _draw_outlined(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Fills the mask, then a dark anti-aliased outline along its inner border (3 px)."""
    image[mask] = colour
    _draw_outline(image, mask, 0.35 * colour, 3, soft=True)


def _draw_outline(image: np.ndarray, mask: np.ndarray, ink: np.ndarray, thickness: int,
                  soft: bool) -> None:
    """Draws ``ink`` along the mask's border pixels as a line ``thickness`` px wide,
    anti-aliased or hard; what falls outside the mask is cut off (the outline stays inside the
    object, about (thickness + 1) / 2 px wide)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST,
                                   cv2.CHAIN_APPROX_NONE)
    drawn = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(drawn, contours, -1, 255, thickness,
                     cv2.LINE_AA if soft else cv2.LINE_8)
    alpha = (drawn.astype(np.float32) / 255.0) * mask                  # stays inside the mask
    image[:] = image * (1.0 - alpha[..., None]) + ink[None, None, :] * alpha[..., None]
