"""Expressions with no target or several targets (gRefCOCO's "generalised" kinds) for a scene.

A robot must hear "not there" and "which one?" as answers; these expressions measure both:

* ``absent`` — a colour and shape combination that is not on the table, preferably a near miss
  (the colour is on another shape and the shape in another colour: "the green star" beside a
  green ball and a red star), and a shape that is not there at all ("the ring").
* ``absent_position`` — a shape that is not on the table, placed by a position word ("the star
  on the left" with no star): judged among look-alikes, the presence test reads the bare shape.
* ``absent_relation`` — the object is there but the relation holds for nothing ("the cube to
  the left of the blue ball" when every cube is to its right), or the anchor is not there.
* ``relation`` and ``absent_relation`` again in the phrasings the RefCOCO layout does not write
  (its relations name the target's shape and the anchor's colour and shape): the target named
  with its colour ("the yellow star above the cube"), the anchor by its shape alone where it is
  the only one of its shape ("the star left of the cube"); one that holds for its target only
  and one that holds for nothing, or whose anchor is a shape not on the table.
* ``shape`` (one target) — an object named by its shape alone, with its size word where
  another object of that shape has the other size ("the star" when one star is there, "the
  small star" beside a big one): a user names no colour where the shape says enough.
* ``ambiguous`` — a look (colour and shape) that two or more objects share, named without what
  tells them apart ("the red ball" beside two red balls): every look-alike is a target.

Marked as gRefCOCO marks them (see :mod:`hybridgl_ros.demo.refcoco_layout`): a no-target
expression has no target object, a multi-target one several.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridgl_ros.demo.expressions import (
    RELATION_MARGIN_PX, Referring, RELATION_TEMPLATES, only_one_in_place, relation_offset,
    scene_expressions, unique_anchors)
from hybridgl_ros.demo.scenes import COLOURS, SHAPES, SceneObject


@dataclass(frozen=True)
class GeneralRef:
    """One expression group with any number of targets (a gRefCOCO ref).

    Attributes:
        targets: indices of the referred objects; empty = no target in the scene.
        kind: one of ``expressions.KINDS``, ``NO_TARGET_KINDS`` or ``MULTI_TARGET_KINDS``.
        sentences: one or more phrasings.
    """

    targets: tuple[int, ...]
    kind: str
    sentences: tuple[str, ...]

    @classmethod
    def of(cls, ref: Referring) -> 'GeneralRef':
        """A single-target reference as a general one."""
        return cls((ref.target,), ref.kind, ref.sentences)


def general_expressions(objects: tuple[SceneObject, ...], seed: int, index: int,
                        per_ref: int = 2) -> list[GeneralRef]:
    """Every expression of scene ``index`` of series ``seed``: the single-target ones of
    :func:`~hybridgl_ros.demo.expressions.scene_expressions` (unchanged), then the
    no-target and multi-target ones (seeded on their own, so adding them changed nothing),
    then the absent position expressions, the shape expressions and the relations in other
    phrasings (each seeded on its own again, added later)."""
    refs = [GeneralRef.of(r) for r in scene_expressions(objects, seed, index, per_ref)]
    rng = np.random.default_rng([seed, index, 2])
    refs += absent_expressions(objects, rng, per_ref)
    refs += ambiguous_expressions(objects, rng, per_ref)
    refs += absent_position_expressions(objects, np.random.default_rng([seed, index, 3]),
                                        per_ref)
    refs += shape_expressions(objects, np.random.default_rng([seed, index, 4]), per_ref)
    refs += phrased_relation_expressions(objects, np.random.default_rng([seed, index, 5]),
                                         per_ref)
    return refs


def absent_expressions(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                       per_ref: int = 2) -> list[GeneralRef]:
    """No-target expressions: an absent look, an absent shape, a relation that holds for
    nothing (each when the scene allows it)."""
    refs = []
    look = _absent_look(objects, rng)
    if look:
        refs.append(_ref((), 'absent', [f'the {look}', look], rng, per_ref))
    absent_shapes = sorted(set(SHAPES) - {o.shape for o in objects})
    if absent_shapes:
        shape = absent_shapes[rng.integers(len(absent_shapes))]
        refs.append(_ref((), 'absent', [f'the {shape}', f'a {shape}'], rng, per_ref))
    relation = _false_relation(objects, rng)
    if relation:
        refs.append(_ref((), 'absent_relation', relation, rng, per_ref))
    return refs


def absent_position_expressions(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                                per_ref: int = 2) -> list[GeneralRef]:
    """No-target expressions that place a shape which is not on the table by a position word
    ("the star on the left", "the top ring"); none when every shape is there."""
    absent_shapes = sorted(set(SHAPES) - {o.shape for o in objects})
    if not absent_shapes:
        return []
    shape = absent_shapes[rng.integers(len(absent_shapes))]
    variants = [f'the {shape} on the left', f'the {shape} on the right',
                f'the {shape} at the top', f'the {shape} at the bottom',
                f'the left {shape}', f'the right {shape}', f'the top {shape}',
                f'the bottom {shape}']
    return [_ref((), 'absent_position', variants, rng, per_ref)]


#: At most this many shape expressions per scene (the other kinds keep their share).
SHAPE_REFS_PER_SCENE = 2


def shape_expressions(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                      per_ref: int = 2) -> list[GeneralRef]:
    """Single-target expressions naming the shape alone: "the star" for the only star, "the
    small star" for a star whose every other star is big (and "the big star" the other way
    round); at most ``SHAPE_REFS_PER_SCENE`` per scene, drawn at random, in scene order."""
    candidates = []
    for t, target in enumerate(objects):
        same_shape = [o for i, o in enumerate(objects) if i != t and o.shape == target.shape]
        if not same_shape:
            candidates.append((t, [f'the {target.shape}', f'a {target.shape}']))
        elif all(o.size != target.size for o in same_shape):
            name = f'{target.size} {target.shape}'
            candidates.append((t, [f'the {name}', name]))
    keep = sorted(rng.permutation(len(candidates))[:SHAPE_REFS_PER_SCENE])
    return [_ref((candidates[i][0],), 'shape', candidates[i][1], rng, per_ref) for i in keep]


def phrased_relation_expressions(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                                 per_ref: int = 2) -> list[GeneralRef]:
    """A relation that holds for its target only (kind ``relation``) and one that holds for
    nothing (``absent_relation``), each drawn at random among those the scene allows, with the
    target named by its shape or its colour and shape and the anchor by its shape alone (the
    only one of its shape) or its colour and shape (the only one of its look), never both as
    the RefCOCO layout names them ("the star left of the red cube"). One time in four the
    no-target one has an anchor shape that is not on the table ("the star left of the ring")."""
    present, absent = [], []
    for t, target in enumerate(objects):
        for t_name in (target.shape, f'{target.colour} {target.shape}'):
            matches = [i for i, o in enumerate(objects) if _named(o, t_name)]
            for anchor in objects:
                if anchor.shape == target.shape:
                    continue
                for a_name in _anchor_names(objects, anchor):
                    if t_name == target.shape and a_name != anchor.shape:
                        continue                          # the RefCOCO layout's phrasing
                    for place in ('left', 'right', 'top', 'bottom'):
                        phrasings = [s.format(s=t_name, a=a_name)
                                     for s in RELATION_TEMPLATES[place]]
                        if only_one_in_place(target, [objects[i] for i in matches if i != t],
                                             anchor, place):
                            present.append((t, phrasings))
                        # listed once per name: at the first object the name fits
                        if matches[0] == t and all(
                                relation_offset(anchor, objects[i], place) < -RELATION_MARGIN_PX
                                for i in matches):
                            absent.append(phrasings)
    refs = []
    if present:
        t, phrasings = present[rng.integers(len(present))]
        refs.append(_ref((t,), 'relation', phrasings, rng, per_ref))
    missing = sorted(set(SHAPES) - {o.shape for o in objects})
    if missing and rng.random() < 0.25:
        target = objects[rng.integers(len(objects))]
        t_name = (target.shape, f'{target.colour} {target.shape}')[rng.integers(2)]
        place = ('left', 'right', 'top', 'bottom')[rng.integers(4)]
        anchor = missing[rng.integers(len(missing))]
        refs.append(_ref((), 'absent_relation', [s.format(s=t_name, a=anchor)
                                                 for s in RELATION_TEMPLATES[place]],
                         rng, per_ref))
    elif absent:
        refs.append(_ref((), 'absent_relation', absent[rng.integers(len(absent))], rng,
                         per_ref))
    return refs


def _named(obj: SceneObject, name: str) -> bool:
    """Whether ``name`` ("star" or "red star") fits ``obj``."""
    return name in (obj.shape, f'{obj.colour} {obj.shape}')


def _anchor_names(objects: tuple[SceneObject, ...], anchor: SceneObject) -> list[str]:
    """The names that single ``anchor`` out: its shape alone when it is the only one of its
    shape, its colour and shape when it is the only one of its look."""
    return [name for name in (anchor.shape, f'{anchor.colour} {anchor.shape}')
            if sum(_named(o, name) for o in objects) == 1]


def ambiguous_expressions(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                          per_ref: int = 2) -> list[GeneralRef]:
    """Multi-target expressions: each look shared by two or more objects, said plainly."""
    refs = []
    looks = [(o.colour, o.shape) for o in objects]
    for look in dict.fromkeys(looks):
        targets = tuple(i for i, other in enumerate(looks) if other == look)
        if len(targets) >= 2:
            name = f'{look[0]} {look[1]}'
            refs.append(_ref(targets, 'ambiguous', [f'the {name}', name], rng, per_ref))
    return refs


def _ref(targets: tuple[int, ...], kind: str, variants: list[str], rng: np.random.Generator,
         per_ref: int) -> GeneralRef:
    picks = sorted(rng.permutation(len(variants))[:per_ref])
    return GeneralRef(targets, kind, tuple(variants[i] for i in picks))


def _absent_look(objects: tuple[SceneObject, ...], rng: np.random.Generator) -> str:
    """'colour shape' of a look not in the scene: a near miss if there is one."""
    looks = {(o.colour, o.shape) for o in objects}
    colours, shapes = {o.colour for o in objects}, {o.shape for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in looks]
    near = [(c, s) for c, s in absent if c in colours and s in shapes]
    pool = near if near and rng.random() < 0.75 else absent
    if not pool:
        return ''
    colour, shape = pool[rng.integers(len(pool))]
    return f'{colour} {shape}'


def _false_relation(objects: tuple[SceneObject, ...], rng: np.random.Generator) -> list[str]:
    """Phrasings of "the X <place> the Y" true of no X: every X is clearly on the other side
    of the anchor Y; or, one time in four, Y is a look that is not on the table."""
    for t in rng.permutation(len(objects)):
        target = objects[t]
        same_shape = [o for o in objects if o.shape == target.shape]
        if rng.random() < 0.25:
            look = _absent_look(objects, rng)
            if look and look.split()[1] != target.shape:
                place = ('left', 'right', 'top', 'bottom')[rng.integers(4)]
                return [s.format(s=target.shape, a=look) for s in RELATION_TEMPLATES[place]]
        for anchor in unique_anchors(objects, int(t)):
            for place in rng.permutation(['left', 'right', 'top', 'bottom']):
                if all(relation_offset(anchor, o, place) < -RELATION_MARGIN_PX
                       for o in same_shape):
                    a_name = f'{anchor.colour} {anchor.shape}'
                    return [s.format(s=target.shape, a=a_name)
                            for s in RELATION_TEMPLATES[place]]
    return []
