"""End to end with the shipped demo models on held-out generated scenes (issue 4's targets).

Prints the per-kind accuracy table (the chosen mask has IoU >= 0.5 with the referred object),
spatial-only queries also per spatial word. Runs with the demo's settings
(``config/demo_scenes.yaml``: the defaults with the vertical ramps and no box prompt), as
``hybridgl demo`` does. Asserted: >= 80% of attribute queries and >= 90% of the spatial-only
queries worded as the issue lists them (look-alikes told apart by left/right/top/bottom/bigger).
"""
import re
from dataclasses import replace

import pytest
import torch

from hybridgl_ros.core.models import load_clip, load_sam
from hybridgl_ros.core.pipeline import HybridGL
from hybridgl_ros.demo import demo_config
from hybridgl_ros.demo.end_to_end import (
    END_TO_END_SEED, IOU_HIT, evaluate_pipeline, format_table, mask_iou)
from hybridgl_ros.demo.gref_expressions import general_expressions
from hybridgl_ros.demo.scenes import make_scene

_SCENES = 12
_RESOLVED_WORDS = ('left', 'right', 'top', 'bottom', 'bigger')


def test_demo_models_resolve_attribute_and_spatial_queries(capsys):
    pipeline = HybridGL.from_config(demo_config())
    results = evaluate_pipeline(pipeline, END_TO_END_SEED, _SCENES)
    with capsys.disabled():
        print(f'\ndemo models, {_SCENES} held-out scenes:\n{format_table(results)}')
    assert results['kinds']['attribute']['accuracy'] >= 0.8
    words = results['spatial_words']
    hits = sum(words[w]['accuracy'] * words[w]['queries'] for w in _RESOLVED_WORDS if w in words)
    total = sum(words[w]['queries'] for w in _RESOLVED_WORDS if w in words)
    assert total >= 30
    assert hits / total >= 0.9


def _demo_and_variant(name: str, section: str, common: dict | None = None, **changes) -> dict:
    """Two pipelines sharing one loaded CLIP and SAM: the demo's configuration ('on') and,
    under ``name``, the same with ``changes`` to one of its sections (both with ``common``
    changes to that section, when given)."""
    config = demo_config()
    if common:
        config = replace(config, **{section: replace(getattr(config, section), **common)})
    device = torch.device('cpu')
    clip, sam = load_clip(config.models, device), load_sam(config.models, device)
    variant = replace(config, **{section: replace(getattr(config, section), **changes)})
    return {'on': HybridGL.from_models(config, clip, sam),
            name: HybridGL.from_models(variant, clip, sam)}


def _held_out_queries(pipeline, kinds, styles=('shaded',)):
    """(frame, sentence, target mask) of the held-out scenes' single-target expressions of
    ``kinds``, each frame prepared once by ``pipeline``."""
    for style, index in ((style, index) for style in styles for index in range(_SCENES)):
        scene = make_scene(END_TO_END_SEED, index, style)
        frame = pipeline.prepare(scene.image_rgb)
        for ref in general_expressions(scene.objects, END_TO_END_SEED, index):
            if ref.kind in kinds and len(ref.targets) == 1:
                for sentence in ref.sentences:
                    yield frame, sentence, scene.masks[ref.targets[0]]


def _right_per_pipeline(pipelines: dict, queries, unambiguous: bool = False
                        ) -> tuple[dict, int]:
    """How many of ``queries`` ((frame, sentence, target mask)) each pipeline answers right
    (found, IoU >= 0.5, not flagged ambiguous when ``unambiguous``), and how many there are."""
    hits, total = dict.fromkeys(pipelines, 0), 0
    for frame, sentence, truth in queries:
        total += 1
        for name, pipeline in pipelines.items():
            result = pipeline.query(frame, sentence)
            hits[name] += bool(result.found and not (unambiguous and result.ambiguous)
                               and mask_iou(result.mask, truth) >= IOU_HIT)
    return hits, total


def _gain(capsys, pipelines: dict, queries, what: str, off: str, on: str, least: int,
          unambiguous: bool = False) -> tuple[dict, int]:
    """:func:`_right_per_pipeline`, the shares printed ("what: off 0.881 -> on 0.903"), at
    least ``least`` queries and more right with the 'on' pipeline than with 'off' checked."""
    hits, total = _right_per_pipeline(pipelines, queries, unambiguous)
    with capsys.disabled():
        print(f"\n{what}, {total} queries: {off} {hits['off'] / total:.3f} -> {on} "
              f"{hits['on'] / total:.3f}")
    assert total >= least
    assert hits['on'] > hits['off']
    return hits, total


def test_position_words_are_judged_among_look_alikes(capsys):
    """``guidance.positions_by_class`` (docs/measurements.md "Position words among look-alikes"):
    "the cube on the left", "the bottom star" are answered right (found, not ambiguous, IoU >= 0.5)
    more often than with the spec's R, on the same frames and models."""
    pipelines = _demo_and_variant('off', 'guidance', positions_by_class=False)
    hits, total = _gain(capsys, pipelines, _held_out_queries(pipelines['on'], ('position',)),
                        f'position expressions on {_SCENES} scenes', 'positions_by_class off',
                        'on', 40, unambiguous=True)
    assert hits['on'] >= 0.75 * total


def test_a_position_relation_word_without_an_anchor_sets_the_ramp(capsys):
    """``guidance.direction_from_relation`` (docs/measurements.md "In front, at the back"): "the
    cube in front", "the star at the back" name a place in the picture as "at the bottom" does;
    with the spec's direction words only they got no ramp, and S preferred the bigger look-alike.
    Measured as it was built, with R among the look-alikes weighed by p of the whole phrase: since
    R weighs them by their reading (``positions_by_geometry``, docs/measurements.md "Which
    look-alike lies there") these queries are all right either way. In the shaded and flat scenes
    alone (11 -> 12 of 12 before) the one it missed was right without the ramp too once SAM's
    clean-up kept the holes the camera sees (docs/measurements.md "Holes the camera sees"): all
    five styles, 22 -> 25 of 25 then."""
    pipelines = _demo_and_variant('off', 'guidance', direction_from_relation=False,
                                  common={'positions_by_geometry': False,
                                          'lookalike_reach': 0.0})

    def said_with_a_relation_word():
        for frame, sentence, truth in _held_out_queries(
                pipelines['on'], ('position', 'spatial'),
                ('shaded', 'flat', 'poster', 'isometric', 'varied')):
            # the generator's templates say a place both ways ("at the bottom", "in front")
            place = re.fullmatch(
                r'(the \w+(?: \w+)?) at the (top|bottom)|the (top|bottom) (.+)', sentence)
            if place is not None:
                phrase = place[1] or f'the {place[4]}'
                back = 'top' in (place[2], place[3])
                yield frame, phrase + (' at the back' if back else ' in front'), truth

    _gain(capsys, pipelines, said_with_a_relation_word(),
          f"'in front' / 'at the back' on {_SCENES} scenes x 5 styles",
          'direction_from_relation off', 'on', 20)


def test_a_position_word_compares_the_look_alikes_not_the_top_three():
    """``guidance.lookalike_margin``: a position word is judged among every mask within the
    margin of the best match to the phrase without it, not among the top 3 by p. The demo's
    scene 1 (seed 5001) has five triangles: "the bottom triangle" compares more than 3 (with the
    first 96 px CLIP the top 3 were three upper ones). In scene 28 of seed 3001 the top 3 of
    "the ring on the left" hold a mask of another shape further left; the look-alikes are two
    rings (with the fourth-stage CLIP scene 1 showed it, with the third-stage one the demo's
    scene 3 and "the left triangle"). There the method's own choice (argmax F) is compared:
    ``decision.look_margin`` keeps a mask of another shape from answering in both."""
    from hybridgl_ros.demo.showcase import DEMO_SEED

    pipelines = _demo_and_variant('top3', 'guidance', lookalike_margin=0.0)
    pipelines['margin'] = pipelines.pop('on')

    def answers(index, text, pick, seed=DEMO_SEED):
        scene = make_scene(seed, index)
        frame = pipelines['margin'].prepare(scene.image_rgb)
        target = pick(scene)
        results = {name: p.query(frame, text, explain=True) for name, p in pipelines.items()}
        right = {name: r.found and mask_iou(r.mask, scene.masks[target]) >= IOU_HIT
                 for name, r in results.items()}
        method = {name: mask_iou(frame.mask(r.explanation.chosen), scene.masks[target])
                  >= IOU_HIT for name, r in results.items()}
        return right, {name: len(r.explanation.candidates) for name, r in results.items()}, method

    right, counts, _ = answers(1, 'the bottom triangle', lambda scene: max(
        range(len(scene.objects)), key=lambda i: scene.masks[i].nonzero()[0].mean()))
    assert right['margin'] and counts['margin'] > 3 and counts['top3'] == 3

    def leftmost_ring(scene):
        rings = [i for i, o in enumerate(scene.objects) if o.shape == 'ring']
        return min(rings, key=lambda i: scene.masks[i].nonzero()[1].mean())

    right, counts, method = answers(28, 'the ring on the left', leftmost_ring, END_TO_END_SEED)
    assert right['margin'] and method['margin'] and not method['top3']
    assert counts['margin'] == 2 and counts['top3'] == 3


def test_a_size_comparative_is_judged_present_on_the_look_without_its_size_word():
    """Scene 6 of seed 3001 has a big and a small purple star. The demo CLIP scored "the
    bigger purple star" below "the purple star" on the big star (9 logits with the SAM's
    first stage, 4.6 with its second, 1.6 at the working resolution of SAM's input area; 1.1
    above it since the CLIP's fourth stage), so P(present) read on the whole phrase rejected it
    (0.807 against a threshold of 0.807); it reads the phrase without the size word, whose best
    s and standout are those of "the purple star"."""
    pipeline = HybridGL.from_config(demo_config())
    scene = make_scene(END_TO_END_SEED, 6, 'shaded')
    frame = pipeline.prepare(scene.image_rgb)
    big = next(i for i, o in enumerate(scene.objects)
               if (o.colour, o.shape, o.size) == ('purple', 'star', 'big'))
    bigger = pipeline.query(frame, 'the bigger purple star', explain=True)
    plain = pipeline.query(frame, 'the purple star', explain=True)
    assert bigger.found and mask_iou(bigger.mask, scene.masks[big]) >= IOU_HIT
    look, whole = bigger.explanation.decision['presence_x'], plain.explanation.decision
    assert look[0] == pytest.approx(whole['presence_x'][0], abs=1e-3)
    assert look[0] != pytest.approx(float(bigger.explanation.similarities.max()), abs=0.1)


_SYNONYM_OF = {'left': 'leftmost', 'right': 'rightmost', 'top': 'upper', 'bottom': 'lower',
               'bigger': 'biggest', 'larger': 'largest', 'smaller': 'smallest'}


def test_other_words_for_position_and_size_are_read_as_the_specs(capsys):
    """``text.spatial_synonyms`` (docs/measurements.md "Other words for position and size"): "the
    leftmost cube", "the biggest purple star", "the lower ring" get the guidance of "the left
    cube", "the bigger purple star", "the bottom ring"; with the spec's exact triggers alone they
    get none and are answered about as if the word were not there."""
    pipelines = _demo_and_variant('off', 'text', spatial_synonyms=False)

    def said_with_other_words():
        for frame, sentence, truth in _held_out_queries(pipelines['on'], ('position', 'spatial')):
            words = sentence.split()
            if len(words) >= 3 and words[0] == 'the' and words[1] in _SYNONYM_OF:
                yield frame, ' '.join(['the', _SYNONYM_OF[words[1]], *words[2:]]), truth

    hits, total = _right_per_pipeline(pipelines, said_with_other_words())
    with capsys.disabled():
        print(f"\nleftmost/rightmost/upper/lower/biggest/largest/smallest, {total} queries on "
              f"{_SCENES} scenes: spec's words only {hits['off'] / total:.3f} -> read as the "
              f"spec's {hits['on'] / total:.3f}")
    assert total >= 30
    assert hits['on'] >= 0.85 * total
    assert hits['on'] >= hits['off'] + 0.2 * total


def test_the_anchor_is_the_mask_every_word_of_its_phrase_fits():
    """``guidance.anchor_by_words`` (docs/measurements.md "The anchor: every word of its
    phrase"): on a flat scene of the tuning series the whole phrase "the green star" fits a red
    star best (the demo CLIP reads the shape over the colour there); q reading the weakest of
    "green" and "star" too puts the anchor on the green star, and the relation is judged from
    there. (With one view of each mask, before docs/measurements.md "Two views of each mask", the
    example was "the green star" of scene 9; up to the CLIP's seventh stage "the blue triangle"
    of scene 2, which the eighth reads right as a whole phrase; up to the eighth "the blue cube"
    of scene 1, which the ninth reads right; over the 15 held-out runs with two views, relations
    right 1,284 -> 1,294 of 1,354 and no-target ones 1,206 -> 1,215 of 1,442 with it.)"""
    scene = make_scene(4002, 5, 'flat')
    anchor_object = next(k for k, o in enumerate(scene.objects)
                         if (o.colour, o.shape) == ('green', 'star'))
    pipelines = _demo_and_variant('off', 'guidance', anchor_by_words=False)
    anchors = {}
    for name, pipeline in pipelines.items():
        frame = pipeline.prepare(scene.image_rgb)
        e = pipeline.query(frame, 'the yellow star to the right of the green star',
                           explain=True).explanation
        anchor = frame.proposals.masks[int(e.other_probs.argmax())]
        anchors[name] = mask_iou(pipeline_mask(frame, anchor, scene),
                                 scene.masks[anchor_object])
    assert anchors['on'] >= IOU_HIT > anchors['off']
    assert anchors['off'] < 0.1          # a red cube, not a piece of the blue one


def pipeline_mask(frame, mask, scene):
    """A proposal's mask at the scene's size (the frame may be at a working resolution)."""
    import cv2

    height, width = scene.image_rgb.shape[:2]
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask.astype('uint8'), (width, height),
                      interpolation=cv2.INTER_NEAREST).astype(bool)


def test_a_position_word_reads_which_masks_are_the_named_look():
    """``guidance.lookalike_reach`` and ``positions_by_geometry`` (docs/measurements.md "Which
    look-alike lies there"): a look-alike the demo CLIP scores low (a small star 12 logits under a
    big one) is still compared when "the star" is its best reading among the object words, and R
    among the look-alikes weighs each by that reading, not by p of the whole phrase, which differs
    between twins by a factor of about 150 for 5 logits and says nothing of "left".

    With the CLIP's sixth stage (objects at any angle) the shaded and flat scenes alone gave
    128 against 129 of 134 (one flat scene's "the cube on the left" lost, one shaded star won);
    with the `varied` ones too, 192 against 191 of 198; over the 15 held-out runs
    (docs/measurements.md "Objects at any angle") position expressions right 2,315 → 2,354 of 2,598
    with it. With two views of each mask (docs/measurements.md "Two views of each mask") those 198
    gave 192 against 194, within the noise, and the 15 held-out runs 2,447 → 2,472 of 2,598 with
    it. With the seventh stage (the CLIP trained on its zoomed look), seed 6001's shaded and flat
    position expressions: 4 right with it and not without, 3 the other way round (within the
    noise); with the eighth (smaller objects), of those 344: 2 and 2 (two phrasings each of one
    query). Asserted here: queries it turns right (IoU < 0.5 or "not found" without it): up to
    the eighth stage both phrasings of flat scene 24's query; the ninth (tables seen at an
    angle) reads "the ball on the right side" right without it, so the second is shaded scene
    2's "the right cube"."""
    pipelines = _demo_and_variant('off', 'guidance', lookalike_reach=0.0,
                                  positions_by_geometry=False)
    cases = (('flat', 24, 'the right ball'), ('shaded', 2, 'the right cube'))
    for style, index, text in cases:
        scene = make_scene(6001, index, style)
        target = next(ref.targets[0] for ref in general_expressions(scene.objects, 6001, index)
                      if text in ref.sentences)
        frame = pipelines['on'].prepare(scene.image_rgb)   # the variant differs in guidance only
        for name, pipeline in pipelines.items():
            result = pipeline.query(frame, text)
            right = result.found and mask_iou(result.mask, scene.masks[target]) >= IOU_HIT
            assert right == (name == 'on'), (style, index, text, name)


def test_a_size_word_tells_look_alikes_of_other_sizes_apart(capsys):
    """``decision.size_apart_ratio`` (docs/measurements.md "A size word tells look-alikes apart"):
    "the small yellow ring" beside a big yellow ring is answered right and not flagged "which one?"
    more often than when the size word tells no object apart, on the same frames and models."""
    pipelines = _demo_and_variant('off', 'decision', size_apart_ratio=0.0)
    sized = (q for q in _held_out_queries(pipelines['on'], ('attribute',))
             if {'small', 'big'} & set(q[1].split()))
    _gain(capsys, pipelines, sized, f'attribute expressions with a size word on {_SCENES} '
          'scenes, right and not flagged', 'size_apart_ratio 0', '1.6', 10, unambiguous=True)
