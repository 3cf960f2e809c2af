"""Referring expressions of the RefCOCO kinds for a generated scene, each tagged with its kind.

Kinds (every expression names exactly one object of its scene):

* ``attribute`` — colour and shape, with the size word when needed: "the green star".
* ``position`` — shape and where it is among the objects of that shape: "the ball on the left".
* ``relation`` — shape and a relation to another object or a comparison: "the cube to the left
  of the blue ball", "the bigger triangle".
* ``spatial`` — the target has a look-alike (same colour and shape): only left/right/top/bottom
  or bigger/smaller tells them apart: "the red ball on the left", "the smaller red ball".

Places are the image's: *top* is up in the picture (the back of the table as a camera sees it),
*bottom* is down (the front). Position and relation expressions also say "at the back", "in
front", "above", "below", "behind" (relation words of spec §7.1); spatial-only expressions use
exactly the words of the position guidance (spec §9): left, right, top, bottom — "bottom" has no
relation word, so it rests on the vertical position ramp (``guidance.vertical_ramps``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridgl_ros.demo.scenes import SceneObject

KINDS = ('attribute', 'position', 'relation', 'spatial')
#: Single-target expressions of the gRefCOCO layout only (``gref_expressions``): an object named
#: by its shape alone ("the star", "the small star").
SHAPE_KINDS = ('shape',)
#: Expressions whose target is not in the scene (gRefCOCO's no-target expressions): a colour and
#: shape combination that is not on the table, a relation that holds for nothing, or a shape
#: that is not there placed by a position word.
NO_TARGET_KINDS = ('absent', 'absent_relation', 'absent_position')
#: Expressions that fit several objects equally (gRefCOCO's multi-target expressions): a look
#: (colour and shape) that two or more objects share, named without what tells them apart.
MULTI_TARGET_KINDS = ('ambiguous',)
#: Centres must differ by this much (pixels) for a position word to be used.
POSITION_MARGIN_PX = 60.0
RELATION_MARGIN_PX = 40.0

_PLACE_TEMPLATES = {
    'left': ('{np} on the left', 'the left {p}', '{np} on the left side'),
    'right': ('{np} on the right', 'the right {p}', '{np} on the right side'),
    'top': ('{np} at the top', 'the top {p}', '{np} at the back'),
    'bottom': ('{np} at the bottom', 'the bottom {p}', '{np} in front'),
}
#: Place words that spatial-only expressions may use (the position guidance's own words).
_SPATIAL_PLACE_WORDS = ('left', 'right', 'top', 'bottom')
RELATION_TEMPLATES = {
    'left': ('the {s} to the left of the {a}', 'the {s} left of the {a}'),
    'right': ('the {s} to the right of the {a}', 'the {s} right of the {a}'),
    'top': ('the {s} above the {a}', 'the {s} behind the {a}'),
    'bottom': ('the {s} below the {a}', 'the {s} in front of the {a}'),
}
_SIZE_TEMPLATES = {'big': ('the bigger {p}', 'the larger {p}'),
                   'small': ('the smaller {p}', 'the tinier {p}')}


@dataclass(frozen=True)
class Referring:
    """One referring expression group (a RefCOCO "ref").

    Attributes:
        target: index of the referred object in the scene's objects.
        kind: one of KINDS.
        sentences: one or more phrasings of the same reference.
    """

    target: int
    kind: str
    sentences: tuple[str, ...]


def referring_expressions(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                          per_ref: int = 2) -> list[Referring]:
    """All unambiguous references in a scene, at most one per (object, kind).

    Args:
        objects: the scene's objects.
        rng: picks ``per_ref`` phrasings among the templates.
        per_ref: sentences per reference.
    """
    refs = []
    for t in range(len(objects)):
        for kind, variants in _candidates(objects, t):
            if not variants:
                continue
            picks = rng.permutation(len(variants))[:per_ref]
            refs.append(Referring(t, kind, tuple(variants[i] for i in sorted(picks))))
    return refs


def scene_expressions(objects: tuple[SceneObject, ...], seed: int, index: int,
                      per_ref: int = 2) -> list[Referring]:
    """The referring expressions of scene ``index`` of series ``seed``: the same phrasings
    wherever that scene is used (dataset files, training captions, the demo, the checks)."""
    return referring_expressions(objects, np.random.default_rng([seed, index, 1]), per_ref)


def _candidates(objects: tuple[SceneObject, ...], t: int) -> list[tuple[str, list[str]]]:
    target = objects[t]
    same_look = [o for i, o in enumerate(objects)
                 if i != t and o.shape == target.shape and o.colour == target.colour]
    same_shape = [o for i, o in enumerate(objects) if i != t and o.shape == target.shape]
    name = f'{target.colour} {target.shape}'
    out = []
    if not same_look:
        out.append(('attribute', [f'the {name}', name]))
    elif all(o.size != target.size for o in same_look):
        out.append(('attribute', [f'the {target.size} {name}', f'{target.size} {name}']))
    if same_look:
        out.append(('spatial', _spatial_variants(target, same_look)))
    if same_shape:
        place = _extreme_place(target, same_shape, POSITION_MARGIN_PX)
        if place:
            out.append(('position', _place_variants(place, target.shape)))
        out.append(('relation', _relation_variants(objects, t, same_shape)))
    return out


def _spatial_variants(target: SceneObject, same_look: list[SceneObject]) -> list[str]:
    name = f'{target.colour} {target.shape}'
    if len(same_look) == 1 and same_look[0].size != target.size:
        return [s.format(p=name) for s in _SIZE_TEMPLATES[target.size]]
    place = _extreme_place(target, same_look, POSITION_MARGIN_PX)
    return _place_variants(place, name, spatial_only=True) if place else []


def _place_variants(place: str, phrase: str, spatial_only: bool = False) -> list[str]:
    """Phrasings of a place. ``spatial_only``: only those with the position guidance's own
    word (no "on the left side", whose "side" turns the relation off, no "at the back")."""
    return [s.format(np=f'the {phrase}', p=phrase) for s in _PLACE_TEMPLATES[place]
            if not spatial_only or (not s.endswith(' side')
                                    and any(w in s.split() for w in _SPATIAL_PLACE_WORDS))]


def _extreme_place(target: SceneObject, others: list[SceneObject], margin: float) -> str:
    """'left'|'right'|'top'|'bottom' if the target is beyond all others by ``margin``, else ''."""
    x, y = target.center_xy
    xs = np.array([o.center_xy[0] for o in others])
    ys = np.array([o.center_xy[1] for o in others])
    spread_x, spread_y = np.abs(xs - x).min(), np.abs(ys - y).min()
    tests = [('left', bool(np.all(xs - x > margin)), spread_x),
             ('right', bool(np.all(x - xs > margin)), spread_x),
             ('top', bool(np.all(ys - y > margin)), spread_y),
             ('bottom', bool(np.all(y - ys > margin)), spread_y)]
    passing = [(spread, place) for place, ok, spread in tests if ok]
    # Prefer horizontal words (the method's strongest cue), then the larger separation.
    passing.sort(key=lambda item: (item[1] not in ('left', 'right'), -item[0]))
    return passing[0][1] if passing else ''


def _relation_variants(objects: tuple[SceneObject, ...], t: int,
                       same_shape: list[SceneObject]) -> list[str]:
    """'the bigger triangle' when two of a shape differ in size, else a relation to an anchor."""
    target = objects[t]
    other = same_shape[0]
    if len(same_shape) == 1 and other.size != target.size and other.colour != target.colour:
        return [s.format(p=target.shape) for s in _SIZE_TEMPLATES[target.size]]
    anchors = unique_anchors(objects, t)
    anchors.sort(key=lambda a: np.hypot(a.center_xy[0] - target.center_xy[0],
                                        a.center_xy[1] - target.center_xy[1]))
    for anchor in anchors:
        for place in ('left', 'right', 'top', 'bottom'):
            if only_one_in_place(target, same_shape, anchor, place):
                a_name = f'{anchor.colour} {anchor.shape}'
                return [s.format(s=target.shape, a=a_name) for s in RELATION_TEMPLATES[place]]
    return []


def unique_anchors(objects: tuple[SceneObject, ...], t: int) -> list[SceneObject]:
    """Objects of another shape whose colour and shape name them uniquely."""
    target = objects[t]
    looks = [(o.colour, o.shape) for o in objects]
    return [o for i, o in enumerate(objects)
            if i != t and o.shape != target.shape and looks.count((o.colour, o.shape)) == 1]


def only_one_in_place(target: SceneObject, same_shape: list[SceneObject], anchor: SceneObject,
                      place: str) -> bool:
    """True if the target lies clearly ``place`` of the anchor and no look-alike shape does."""
    return (relation_offset(anchor, target, place) > RELATION_MARGIN_PX
            and all(relation_offset(anchor, o, place) < -RELATION_MARGIN_PX for o in same_shape))


def relation_offset(anchor: SceneObject, obj: SceneObject, place: str) -> float:
    """How far ``obj`` lies in ``place`` of ``anchor`` (pixels; negative = the other side)."""
    dx = anchor.center_xy[0] - obj.center_xy[0]
    dy = anchor.center_xy[1] - obj.center_xy[1]
    return {'left': dx, 'right': -dx, 'top': dy, 'bottom': -dy}[place]
