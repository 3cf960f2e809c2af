"""Plain rendering styles of the demo scenes: flat colours on plain backgrounds.

The demo CLIP first knew one renderer (:mod:`hybridgl_ros.demo.scenes`' ``shaded`` style), so
anything drawn otherwise — flat fills, a plain backdrop, a cube drawn as a square, another
palette, another canvas — was foreign to it. Two more styles:

* ``flat`` (trained on): canvas 640x480, 512x512 or 768x512; one plain background colour
  (neutral, light or dark, a faint gradient); flat object colours drawn around two anchor
  palettes per colour name (this project's and the usual named-colour RGBs) with jitter; a cube
  is a hexagon or a square; no shading, no shadow, little noise.
* ``poster`` (held out: never used in training or to choose any setting): canvas 600x600 or
  800x600, another palette (matplotlib's tab10 colours), every shape with a dark outline and
  anti-aliased edges, cubes drawn as squares, thinner star arms, a wider ring hole, object
  sizes relative to the canvas. Figures on it estimate how the models and settings carry over
  to a renderer this project does not have.

Objects, their sizes and look-alikes are sampled as in the shaded style
(:func:`~hybridgl_ros.demo.scenes.sample_specs`); sizes scale with the canvas.
"""
from __future__ import annotations

import cv2
import numpy as np

from hybridgl_ros.demo.scenes import Scene, SceneObject, place, sample_specs, scaled, shape_mask

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
POSTER_CANVASES = ((600, 600), (800, 600))


def render_plain(rng: np.random.Generator, style: str, object_scale: float = 1.0) -> Scene:
    """Renders one scene of a plain style ('flat' or 'poster') from ``rng``, every object's
    size times ``object_scale``."""
    poster = style == 'poster'
    canvases = POSTER_CANVASES if poster else FLAT_CANVASES
    width, height = canvases[rng.integers(len(canvases))]
    radius_range = scaled(RADIUS_FRACTION, min(width, height) * object_scale)
    objects = place(rng, sample_specs(rng), (width, height), radius_range)
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
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST,
                                   cv2.CHAIN_APPROX_NONE)
    ink = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(ink, contours, -1, 255, 3, cv2.LINE_AA)
    alpha = (ink.astype(np.float32) / 255.0) * mask                    # stays inside the mask
    dark = 0.35 * colour
    image[:] = image * (1.0 - alpha[..., None]) + dark[None, None, :] * alpha[..., None]
