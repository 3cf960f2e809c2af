"""Training material for the demo CLIP: mask inputs exactly as the pipeline builds them, and
captions with colour, shape and size words whose matches are known.

A region is one object of a scene or the table (everything outside the objects). Its inputs are
built by the core's ``MaskInputBuilder`` (spec §4.1-4.2: local image with the constant fill,
blurred global image, token mask at the model's input size), so the network learns on the very
images it gets at run time. A caption carries a :class:`Descriptor`: the words it commits to.
Region r matches caption c when every word of c's descriptor holds for r; the contrastive loss
then treats all matches as positives (soft multi-positive targets).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from hybridgl_ros.core.mask_images import MaskInputs
from hybridgl_ros.demo.expressions import scene_expressions
from hybridgl_ros.demo.recipe import low_res_shares
from hybridgl_ros.demo.scenes import (
    COLOURS, SHAPES, SIZES, Scene, SceneObject, at_working_size, make_scene)

TABLE = 'table'


@dataclass(frozen=True)
class Descriptor:
    """The words of a caption; None = not said. ``shape == TABLE`` means the background."""

    colour: str | None = None
    shape: str | None = None
    size: str | None = None

    def matches(self, region: 'Descriptor') -> bool:
        """Whether a region (a full descriptor) satisfies every word of this caption."""
        if (self.shape == TABLE) != (region.shape == TABLE):
            return False
        return all(mine is None or mine == theirs for mine, theirs in (
            (self.colour, region.colour), (self.shape, region.shape), (self.size, region.size)))


#: (template, words it uses) for an object; c = colour, s = shape, z = size, {zc} = a
#: comparative of the size ("smaller" for a small object: in these scenes a comparison only
#: ever sets a small against a big object).
OBJECT_TEMPLATES = (
    ('the {c} {s}', 'cs'), ('{c} {s}', 'cs'), ('the {z} {c} {s}', 'csz'), ('{z} {c} {s}', 'csz'),
    ('the {z} {s}', 'sz'), ('a {z} {s}', 'sz'), ('the {s}', 's'), ('{s}', 's'), ('{c}', 'c'),
    ('the {c} one', 'c'), ('{z}', 'z'), ('a photo of a {c} {s}', 'cs'),
    ('a photo of a the {c} {s}.', 'cs'), ('a photo of a the {s}.', 's'),
    ('a photo of the {z} {s}', 'sz'), ('the {zc} {c} {s}', 'csz'), ('the {zc} {s}', 'sz'))
#: Noun phrases for the coherence-map (GEM) captions, wrapped in GemConfig.prompt.
PHRASE_TEMPLATES = (('the {c} {s}', 'cs'), ('the {s}', 's'), ('the {z} {c} {s}', 'csz'),
                    ('the {z} {s}', 'sz'), ('{c} {s}', 'cs'), ('the {zc} {c} {s}', 'csz'),
                    ('the {zc} {s}', 'sz'))
#: Captions of an object's zoomed window (``ClipRecipe.window_weight``): no size words, as the
#: window shows every object at one share of its side (half, at the default margin).
WINDOW_TEMPLATES = (
    ('the {c} {s}', 'cs'), ('{c} {s}', 'cs'), ('the {s}', 's'), ('{s}', 's'), ('{c}', 'c'),
    ('the {c} one', 'c'), ('a photo of a {c} {s}', 'cs'), ('a photo of a the {c} {s}.', 'cs'),
    ('a photo of a the {s}.', 's'))
#: Words that name each size class, comparatives included.
SIZE_WORDS = {'small': ('small', 'smaller', 'tinier'), 'big': ('big', 'bigger', 'larger')}
TABLE_CAPTIONS = ('the table', 'table', 'the background', 'a photo of the table')
#: Words of the head noun phrase that each expression kind commits to.
KIND_WORDS = {'attribute': 'cs', 'position': 's', 'relation': 's', 'spatial': 'cs'}


def region_descriptor(obj: SceneObject | None) -> Descriptor:
    """The full descriptor of an object, or of the table for None."""
    if obj is None:
        return Descriptor(shape=TABLE)
    return Descriptor(obj.colour, obj.shape, obj.size)


def absent_captions(rng: np.random.Generator, objects: tuple[SceneObject, ...], count: int
                    ) -> list[tuple[str, Descriptor]]:
    """Captions of looks that are not in the scene ("the green star" beside a green ball and a
    red star; "the ring" with no ring): in-scene negatives that teach the model what "not
    there" scores (see ``train_clip``'s presence loss). Near misses are preferred."""
    looks = {(o.colour, o.shape) for o in objects}
    colours, shapes = {o.colour for o in objects}, {o.shape for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in looks]
    near = [(c, s) for c, s in absent if c in colours or s in shapes]
    out = []
    for _ in range(count):
        pool = near if near and rng.random() < 0.7 else absent
        colour, shape = pool[rng.integers(len(pool))]
        if shape not in shapes and rng.random() < 0.3:
            template, words = ABSENT_SHAPE_TEMPLATES[rng.integers(len(ABSENT_SHAPE_TEMPLATES))]
        else:
            template, words = ABSENT_TEMPLATES[rng.integers(len(ABSENT_TEMPLATES))]
        out.append((template.format(c=colour, s=shape),
                    Descriptor(colour if 'c' in words else None, shape)))
    return out


#: Captions of absent looks (c = colour, s = shape).
ABSENT_TEMPLATES = (('the {c} {s}', 'cs'), ('{c} {s}', 'cs'), ('a photo of a the {c} {s}.', 'cs'))
ABSENT_SHAPE_TEMPLATES = (('the {s}', 's'), ('a {s}', 's'), ('a photo of a the {s}.', 's'))


def caption(rng: np.random.Generator, obj: SceneObject | None, sentences: list[tuple[str, str]],
            expression_rate: float = 0.3) -> tuple[str, Descriptor]:
    """A random caption of a region and its descriptor.

    Args:
        obj: the object, or None for the table.
        sentences: (sentence, kind) referring expressions of this object in its scene.
        expression_rate: how often a referring expression is used when there is one.
    """
    if obj is None:
        return TABLE_CAPTIONS[rng.integers(len(TABLE_CAPTIONS))], Descriptor(shape=TABLE)
    if sentences and rng.random() < expression_rate:
        text, kind = sentences[rng.integers(len(sentences))]
        sized = any(word in SIZE_WORDS[obj.size] for word in text.split())
        return text, _descriptor(obj, KIND_WORDS[kind] + ('z' if sized else ''))
    return _fill(rng, obj, OBJECT_TEMPLATES)


def window_caption(rng: np.random.Generator, obj: SceneObject) -> tuple[str, Descriptor]:
    """A random caption of an object's zoomed window (no size word) and its descriptor."""
    return _fill(rng, obj, WINDOW_TEMPLATES)


def phrase(rng: np.random.Generator, obj: SceneObject) -> tuple[str, Descriptor]:
    """A random noun phrase naming an object ("the red ball") and its descriptor."""
    return _fill(rng, obj, PHRASE_TEMPLATES)


def _fill(rng: np.random.Generator, obj: SceneObject, templates: tuple[tuple[str, str], ...]
          ) -> tuple[str, Descriptor]:
    template, words = templates[rng.integers(len(templates))]
    comparatives = SIZE_WORDS[obj.size][1:]
    text = template.format(c=obj.colour, s=obj.shape, z=obj.size,
                           zc=comparatives[rng.integers(len(comparatives))])
    return text, _descriptor(obj, words)


def _descriptor(obj: SceneObject, words: str) -> Descriptor:
    return Descriptor(obj.colour if 'c' in words else None, obj.shape if 's' in words else None,
                      obj.size if 'z' in words else None)


def match_matrix(regions: list[Descriptor], captions: list[Descriptor]) -> torch.Tensor:
    """(R, C) float32: 1 where region r satisfies caption c."""
    return torch.tensor([[float(c.matches(r)) for c in captions] for r in regions])


@dataclass
class PooledScene:
    """One scene's network inputs (float16 to save memory) and what its regions are.

    Attributes:
        style: the scene's rendering style.
        local, global_: (R, 3, h, w) float16 mask images, the table last.
        token_mask: (R, T) float16.
        gem_image: (3, s·h, s·w) float16, the whole scene as GEM sees it (s = input_scale).
        coverage: (R, rows, cols) float16, each region's share of every GEM patch cell.
        objects: the R - 1 objects; region R - 1 is the table.
        sentences: per object, its (sentence, kind) referring expressions.
    """

    style: str
    local: torch.Tensor
    global_: torch.Tensor
    token_mask: torch.Tensor
    gem_image: torch.Tensor
    coverage: torch.Tensor
    objects: tuple[SceneObject, ...]
    sentences: list[list[tuple[str, str]]]
    windows: MaskInputs | None = None
    """Each object's inputs on its zoomed window (float16), or None."""


def scene_regions(scene: Scene, mask_grid: int = 0) -> np.ndarray:
    """(R, H, W) bool: the object masks, then the table (the pixels of no object); with
    ``mask_grid`` > 0 each object's mask as SAM draws it (:func:`as_sam_draws`)."""
    table = ~scene.masks.any(axis=0)
    objects = as_sam_draws(scene.masks, mask_grid) if mask_grid > 0 else scene.masks
    return np.concatenate([objects, table[None]])


def as_sam_draws(masks: np.ndarray, grid: int) -> np.ndarray:
    """(K, H, W) bool: each mask as SAM draws it: SAM predicts a mask as logits on a ``grid``-
    cell grid over its input's longer side (64 for the embedded SAM: 4 x its 16 x 16 token
    grid) and upsamples them bilinearly, so a small object's mask comes out a blob (a cube's
    corners cut round, a star without its points). Here: the mask's share of each cell, read
    back bilinearly, kept where it is at least half. A mask that would vanish stays as it is
    (SAM proposes nothing there; a training region needs its pixels)."""
    h, w = masks.shape[1:]
    out = []
    for mask in masks:
        blob = cv2.resize(low_res_shares(mask, grid), (w, h),
                          interpolation=cv2.INTER_LINEAR) >= 0.5
        out.append(blob if blob.any() else mask)
    return np.stack(out)


def pool_scene(encoder, seed: int, index: int, style: str = 'shaded',
               working_pixels: int = 0, object_scale: float = 1.0,
               any_angle: bool = False, mask_grid: int = 0,
               zoom_context: float = 0.0) -> PooledScene:
    """Builds the inputs of scene ``index`` of series ``seed`` with the pipeline's code.

    Args:
        encoder: the core's ``HybridEncoder`` around the model being trained.
        style: the scene's rendering style.
        working_pixels: build them from the frame downscaled to this many pixels, as the
            pipeline does before SAM and CLIP see it (0: the full frame).
        object_scale: every object's size times this (``scenes.make_scene``).
        any_angle: every object at an angle from the whole circle (``scenes.make_scene``).
        mask_grid: the objects' masks as SAM draws them on this grid (``as_sam_draws``; 0:
            the exact masks).
        zoom_context: > 0: also each object's inputs on the window the default mode's zoomed
            look cuts around it with this margin (``PooledScene.windows``).
    """
    from hybridgl_ros.core.config import GemConfig
    from hybridgl_ros.core.gem import preprocess_image

    scene = at_working_size(make_scene(seed, index, style, object_scale, any_angle),
                            working_pixels)
    regions = scene_regions(scene, mask_grid)
    windows = None
    with torch.no_grad():
        builder = encoder.input_builder(scene.image_rgb)
        inputs = builder.build(torch.from_numpy(regions))
        if zoom_context > 0:
            windows = builder.zoomed(regions[:-1], zoom_context).to(torch.float16)
    gem = GemConfig()
    gem_hw = tuple(gem.input_scale * side for side in encoder.input_hw)
    gem_image = preprocess_image(scene.image_rgb, gem_hw, gem.image_mean, gem.image_std)
    grid = tuple(gem.input_scale * side for side in encoder.grid_hw)
    coverage = np.stack([cv2.resize(region.astype(np.float32), grid[::-1],
                                    interpolation=cv2.INTER_AREA)
                         for region in regions])
    refs = scene_expressions(scene.objects, seed, index, per_ref=3)
    sentences: list[list[tuple[str, str]]] = [[] for _ in scene.objects]
    for ref in refs:
        sentences[ref.target].extend((s, ref.kind) for s in ref.sentences)
    return PooledScene(style, inputs.local.half(), inputs.global_.half(),
                       inputs.token_mask.half(),
                       gem_image[0].half(), torch.from_numpy(coverage).half(), scene.objects,
                       sentences, windows)


def vocabulary() -> list[str]:
    """Every word the captions use (for the model card)."""
    words = set(COLOURS) | set(SHAPES) | set(SIZES)
    return sorted(words)
