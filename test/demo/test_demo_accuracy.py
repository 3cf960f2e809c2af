"""End to end with the shipped demo models on held-out generated scenes (issue 4's targets).

Prints the per-kind accuracy table (the chosen mask has IoU >= 0.5 with the referred object).
"""
from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.pipeline import HybridGL
from hybridgl_ros.demo.end_to_end import END_TO_END_SEED, evaluate_pipeline, format_table

_SCENES = 6


def test_demo_models_resolve_attribute_and_spatial_queries(capsys):
    pipeline = HybridGL.from_config(HybridGLConfig())
    results = evaluate_pipeline(pipeline, END_TO_END_SEED, _SCENES)
    with capsys.disabled():
        print(f'\ndemo models, {_SCENES} held-out scenes:\n{format_table(results)}')
    assert results['kinds']['attribute']['accuracy'] >= 0.8
    assert results['kinds']['spatial']['accuracy'] >= 0.9
