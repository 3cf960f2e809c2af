"""End to end with the shipped demo models on held-out generated scenes (issue 4's targets).

Prints the per-kind accuracy table (the chosen mask has IoU >= 0.5 with the referred object),
spatial-only queries also per spatial word. Runs with the demo's settings
(``config/demo_scenes.yaml``: the defaults, the vertical ramps, its own calibration), as
``hybridgl demo`` does. Asserted: >= 80% of attribute queries and >= 90% of the spatial-only
queries worded as the issue lists them (look-alikes told apart by left/right/top/bottom/bigger).
"""
from dataclasses import replace

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


def test_position_words_are_judged_among_look_alikes(capsys):
    """``guidance.positions_by_class`` (README "Position words among look-alikes"): "the cube
    on the left", "the bottom star" are answered right (found, not ambiguous, IoU >= 0.5) more
    often than with the spec's R, on the same frames and models."""
    config = demo_config()
    device = torch.device('cpu')
    clip, sam = load_clip(config.models, device), load_sam(config.models, device)
    off_config = replace(config, guidance=replace(config.guidance, positions_by_class=False))
    pipelines = {'on': HybridGL.from_models(config, clip, sam),
                 'off': HybridGL.from_models(off_config, clip, sam)}
    hits, total = {'on': 0, 'off': 0}, 0
    for index in range(_SCENES):
        scene = make_scene(END_TO_END_SEED, index, 'shaded')
        frame = pipelines['on'].prepare(scene.image_rgb)
        for ref in general_expressions(scene.objects, END_TO_END_SEED, index):
            if ref.kind != 'position':
                continue
            truth = scene.masks[ref.targets[0]]
            for sentence in ref.sentences:
                total += 1
                for name, pipeline in pipelines.items():
                    result = pipeline.query(frame, sentence)
                    hits[name] += bool(result.found and not result.ambiguous
                                       and mask_iou(result.mask, truth) >= IOU_HIT)
    with capsys.disabled():
        print(f"\nposition expressions, {total} on {_SCENES} scenes: positions_by_class off "
              f"{hits['off'] / total:.3f} -> on {hits['on'] / total:.3f}")
    assert total >= 40
    assert hits['on'] > hits['off']
    assert hits['on'] >= 0.75 * total


def test_a_position_word_compares_every_look_alike_not_only_the_top_three():
    """``guidance.lookalike_margin``: the demo's scene 1 (seed 5001) has five triangles; the
    top 3 by p of "the bottom triangle" are three of the upper ones, so among them the
    bottom-most is not the bottom triangle. Every mask within the margin of the best match to
    "the triangle" is compared instead."""
    from hybridgl_ros.demo.showcase import DEMO_SEED

    config = demo_config()
    device = torch.device('cpu')
    clip, sam = load_clip(config.models, device), load_sam(config.models, device)
    top3 = replace(config, guidance=replace(config.guidance, lookalike_margin=0.0))
    pipelines = {'margin': HybridGL.from_models(config, clip, sam),
                 'top3': HybridGL.from_models(top3, clip, sam)}
    scene = make_scene(DEMO_SEED, 1)
    frame = pipelines['margin'].prepare(scene.image_rgb)
    bottom = max(range(len(scene.objects)), key=lambda i: scene.masks[i].nonzero()[0].mean())
    results = {name: p.query(frame, 'the bottom triangle', explain=True)
               for name, p in pipelines.items()}
    ious = {name: mask_iou(r.mask, scene.masks[bottom]) for name, r in results.items()}
    assert results['margin'].found and ious['margin'] >= IOU_HIT
    assert ious['top3'] < IOU_HIT
    assert len(results['margin'].explanation.candidates) > 3
    assert len(results['top3'].explanation.candidates) == 3
