"""The config: spec defaults, grouped names, YAML and its errors."""
import pytest

from hybridgl_ros.core.config import PHRASECUT_PROPOSALS, HybridGLConfig
from hybridgl_ros.core.errors import ConfigError


def test_defaults_are_the_spec_values():
    c = HybridGLConfig()
    spec = c.proposals.for_mode(reference=True)
    assert (spec.points_per_side, spec.pred_iou_thresh, spec.stability_score_thresh,
            spec.box_nms_thresh, spec.min_mask_region_area) == (8, 0.7, 0.7, 0.7, 800)
    assert (c.features.mode, c.features.fusion_weight, c.features.blur_kernel_px,
            c.features.blur_sigma_px) == ('G2L', 2.0, 15, 2.6)
    assert (c.guidance.candidate_count, c.guidance.partner_count, c.guidance.spatial_weight,
            c.guidance.beta, c.guidance.beta_big, c.guidance.beta_small) == (3, 6, 0.6, 1.8,
                                                                              1.95, 1.5)
    assert c.guidance.vertical_ramps and c.parity == 'default'
    assert PHRASECUT_PROPOSALS.points_per_side == 64 and PHRASECUT_PROPOSALS.crop_n_layers == 1


def test_the_prompt_grid_is_the_modes_unless_set():
    """0: the spec's 8 in parity mode, 12 in the default mode (docs/measurements.md "A denser
    prompt grid"); a value set is used in both."""
    c = HybridGLConfig()
    assert c.proposals.points_per_side == 0
    assert c.proposals.for_mode(reference=True).points_per_side == 8
    assert c.proposals.for_mode(reference=False).points_per_side == 12
    assert c.proposals.generator_settings(1024)['points_per_side'] == 12
    set_16 = HybridGLConfig.from_flat({'proposals.points_per_side': 16}).proposals
    assert set_16.grid_side(reference=True) == set_16.grid_side(reference=False) == 16
    with pytest.raises(ConfigError, match='points_per_side'):
        HybridGLConfig.from_flat({'proposals.points_per_side': -1})


def test_the_crop_layers_are_the_mode_and_models_unless_set():
    """-1: one layer in the default mode for a SAM taking less than 512 px (the demo SAM's
    256), none for the SAM checkpoints' 1024 nor in parity mode; a value set is used in both."""
    proposals = HybridGLConfig().proposals
    assert proposals.crop_n_layers == -1
    assert proposals.for_mode(reference=False, input_side=256).crop_n_layers == 1
    assert proposals.for_mode(reference=False, input_side=1024).crop_n_layers == 0
    assert proposals.for_mode(reference=True, input_side=256).crop_n_layers == 0
    assert proposals.generator_settings(256)['crop_n_layers'] == 1
    assert proposals.generator_settings(1024)['crop_n_layers'] == 0
    set_0 = HybridGLConfig.from_flat({'proposals.crop_n_layers': 0}).proposals
    assert set_0.for_mode(False, 256).crop_n_layers == 0
    set_2 = HybridGLConfig.from_flat({'proposals.crop_n_layers': 2}).proposals
    assert set_2.for_mode(True, 1024).crop_n_layers == 2
    with pytest.raises(ConfigError, match='crop_n_layers'):
        HybridGLConfig.from_flat({'proposals.crop_n_layers': -2})
    with pytest.raises(ConfigError, match='crop_n_points_downscale_factor'):
        HybridGLConfig.from_flat({'proposals.crop_n_points_downscale_factor': 0})


def test_the_score_filters_are_the_mode_and_models_unless_set():
    """-1: the spec's 0.7, but 0.4 in the default mode for a SAM taking less than 512 px (its
    masks on a coarse grid, docs/measurements.md "Small objects: SAM's score filters"); a value set
    is used in both modes; below 0 only -1."""
    proposals = HybridGLConfig().proposals
    assert proposals.pred_iou_thresh == proposals.stability_score_thresh == -1
    for reference, side, expected in ((False, 256, 0.4), (False, 1024, 0.7), (True, 256, 0.7),
                                      (True, 1024, 0.7)):
        resolved = proposals.for_mode(reference, side)
        assert resolved.pred_iou_thresh == resolved.stability_score_thresh == expected
    assert proposals.generator_settings(256)['pred_iou_thresh'] == 0.4
    assert proposals.generator_settings(1024)['stability_score_thresh'] == 0.7
    set_0 = HybridGLConfig.from_flat({'proposals.pred_iou_thresh': 0.0}).proposals
    assert set_0.for_mode(True, 1024).pred_iou_thresh == 0.0
    assert set_0.for_mode(False, 256).stability_score_thresh == 0.4
    for name in ('pred_iou_thresh', 'stability_score_thresh'):
        with pytest.raises(ConfigError, match=name):
            HybridGLConfig.from_flat({f'proposals.{name}': -0.5})


def test_flat_names_round_trip():
    c = HybridGLConfig.from_flat({'proposals.points_per_side': '16', 'guidance.vertical_ramps':
                                  'false', 'features.image_mean': [0.5, 0.5, 0.5]})
    assert c.proposals.points_per_side == 16 and c.guidance.vertical_ramps is False
    assert HybridGLConfig.from_flat(c.to_flat()) == c


@pytest.mark.parametrize('values', [{'proposals.points_per_sid': 8}, {'parity': 'exact'},
                                    {'features.mode': 'GL'}, {'proposals.points_per_side': 1.5},
                                    {'features.image_mean': [0.5]}, {'features.zoom_context': -1},
                                    {'features.zoom_context': float('nan')},
                                    {'decision.size_apart_ratio': 0.8},
                                    {'decision.size_apart_ratio': float('nan')}])
def test_bad_values_are_config_errors(values):
    with pytest.raises(ConfigError):
        HybridGLConfig.from_flat(values)


@pytest.mark.parametrize('name, value, words', [
    # a NaN weight or bias made every score NaN while the answer still said found
    ('decision.presence_bias', float('nan'), 'decision.presence_bias must be finite, not nan'),
    ('features.fusion_weight', float('inf'), 'features.fusion_weight must be finite'),
    ('decision.presence_weights', (float('nan'),) * 20, 'presence_weights must be finite'),
    ('tracking.min_sam_score', float('nan'), 'tracking.min_sam_score must be finite'),
    ('tracking.min_sam_score', 1.5, 'tracking.min_sam_score must be in [0.0, 1.0], not 1.5'),
    # these failed inside a stage: a range() error in SAM, OpenCV's assertion, a KeyError
    ('proposals.points_per_batch', 0, 'proposals.points_per_batch must be >= 1, not 0'),
    ('features.blur_kernel_px', 4, 'features.blur_kernel_px must be odd'),
    ('text.cache_size', -1, 'text.cache_size must be >= 0, not -1'),
    ('features.image_std', (0.0, 0.2, 0.2), 'features.image_std must be > 0, not 0.0'),
    ('text.logit_scale', 0.0, 'text.logit_scale must be > 0'),
    ('guidance.spatial_weight', 1.5, 'guidance.spatial_weight must be in [0.0, 1.0], not 1.5'),
    ('decision.ambiguity_margin', -5.0, 'decision.ambiguity_margin must be >= 0.0'),
    ('tracking.max_growth', 0.5, 'tracking.max_growth must be >= 1.0, not 0.5'),
    ('tracking.min_appearance', -2.0, 'tracking.min_appearance must be in [-1.0, 1.0]'),
])
def test_out_of_range_values_are_refused_naming_the_field_and_bounds(name, value, words):
    with pytest.raises(ConfigError) as error:
        HybridGLConfig.from_flat({name: value})
    assert words in str(error.value)


@pytest.mark.parametrize('value', ['true', 'Yes', ' on ', '1', 1, True])
def test_true_is_read_from_its_usual_spellings(value):
    assert HybridGLConfig.from_flat({'text.spatial_synonyms': False,
                                     'features.mirror_view': value}).features.mirror_view


@pytest.mark.parametrize('value', ['false', 'NO', 'off', '0', 0, False])
def test_false_is_read_from_its_usual_spellings(value):
    assert not HybridGLConfig.from_flat({'features.mirror_view': value}).features.mirror_view


@pytest.mark.parametrize('value', ['ture', 'maybe', '', 2, 0.5])
def test_a_misspelt_boolean_is_refused_not_read_as_false(value):
    with pytest.raises(ConfigError, match='features.mirror_view: cannot use .*true or false'):
        HybridGLConfig.from_flat({'features.mirror_view': value})


@pytest.mark.parametrize('name', ['proposals.points_per_side', 'text.logit_scale'])
def test_true_or_false_is_no_number(name):
    with pytest.raises(ConfigError, match=f'{name}: cannot use True .*a number'):
        HybridGLConfig.from_flat({name: True})


@pytest.mark.parametrize('node_key', ['/**', 'hybridgl_node', '/robot1/hybridgl_node'])
def test_yaml_sections_and_ros_parameter_files_both_read(tmp_path, node_key):
    plain = tmp_path / 'plain.yaml'
    plain.write_text('parity: reference\nguidance:\n  beta: 1.7\n')
    ros = tmp_path / 'ros.yaml'
    ros.write_text(f'{node_key}:\n  ros__parameters:\n    publish_overlay: true\n'
                   '    guidance:\n      beta: 1.6\n')
    assert HybridGLConfig.from_yaml(plain).guidance.beta == 1.7
    assert HybridGLConfig.from_yaml(plain).reference
    assert HybridGLConfig.from_yaml(ros).guidance.beta == 1.6


def test_unknown_yaml_field_is_an_error(tmp_path):
    path = tmp_path / 'typo.yaml'
    path.write_text('guidance:\n  betta: 1.7\n')
    with pytest.raises(ConfigError, match='betta'):
        HybridGLConfig.from_yaml(path)


def test_decision_weights_of_the_wrong_length_are_refused():
    with pytest.raises(ConfigError, match=r'presence_weights.*needs 20 values'):
        HybridGLConfig.from_flat({'decision.presence_weights': [1.0, 0.0, 0.0, 0.0]})
