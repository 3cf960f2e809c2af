"""End to end with the shipped demo models on held-out generated scenes (issue 4's targets).

Prints the per-kind accuracy table (the chosen mask has IoU >= 0.5 with the referred object),
spatial-only queries also per spatial word. Asserted: >= 80% of attribute queries, and >= 90% of
the spatial-only queries worded left/right/bigger. Known shortfall, printed but not asserted
(see hybridgl_ros/demo_models/MODEL_CARD.md): "smaller" look-alikes lose to the bigger one in
the spatial score (the coherence map of these models does not tell sizes apart), and with the
vertical ramps off (the default) top/front rest on the weak relation term alone.
"""
from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.pipeline import HybridGL
from hybridgl_ros.demo.end_to_end import END_TO_END_SEED, evaluate_pipeline, format_table

_SCENES = 8
_RESOLVED_WORDS = ('left', 'right', 'bigger')


def test_demo_models_resolve_attribute_and_spatial_queries(capsys):
    pipeline = HybridGL.from_config(HybridGLConfig())
    results = evaluate_pipeline(pipeline, END_TO_END_SEED, _SCENES)
    with capsys.disabled():
        print(f'\ndemo models, {_SCENES} held-out scenes:\n{format_table(results)}')
    assert results['kinds']['attribute']['accuracy'] >= 0.8
    words = results['spatial_words']
    hits = sum(words[w]['accuracy'] * words[w]['queries'] for w in _RESOLVED_WORDS if w in words)
    total = sum(words[w]['queries'] for w in _RESOLVED_WORDS if w in words)
    assert total > 0
    assert hits / total >= 0.9
