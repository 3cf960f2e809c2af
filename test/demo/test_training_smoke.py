"""A few tiny training steps of each demo model: files written, loadable, metrics present."""
import json

import torch

from hybridgl_ros.core.models import build_clip, build_sam, load_clip_weights
from hybridgl_ros.demo.train_clip import ClipRecipe, train_clip
from hybridgl_ros.demo.train_sam import SamRecipe, train_sam


def test_clip_smoke_training_writes_loadable_weights(tmp_path):
    metrics = train_clip(tmp_path, ClipRecipe.smoke())
    model, _ = build_clip(str(tmp_path / 'clip_config.json'))
    load_clip_weights(model, tmp_path / 'clip.pt')
    assert 0.0 <= metrics['colour_in_context'] <= 1.0
    assert json.loads((tmp_path / 'clip_metrics.json').read_text())['steps'] == 2


def test_sam_smoke_training_writes_a_checkpoint_sam_loads(tmp_path):
    metrics = train_sam(tmp_path, SamRecipe.smoke())
    sam = build_sam(str(tmp_path / 'sam_arch.json'))
    state = torch.load(tmp_path / 'sam.pth', weights_only=True)
    sam.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    assert 0.0 <= metrics['recall_iou_0.5'] <= 1.0


def test_the_clip_is_trained_in_nine_stages_each_from_the_one_before(tmp_path):
    from hybridgl_ros.core.config import FeatureConfig
    from hybridgl_ros.demo.train_clip import (
        DEMO_WORKING_PIXELS, OBJECT_SCALES, SMALL_OBJECT_SCALES, SMALL_OBJECTS_POOL_SCENES,
        TABLETOP_STEPS, TRIED_EIGHTH_POOL_SCENES, TRIED_NINTH_POOL_SCENES, UPSCALE_POOL_SCENES,
        UPSCALED_IMAGE_SIZE, ClipRecipe, train_demo_clip)

    metrics = train_demo_clip(tmp_path, smoke=True)
    for number in range(1, 9):
        assert (tmp_path / f'stage{number}' / 'clip.pt').is_file()
        assert metrics[f'stage{number}']['init_weights'] == (
            str(tmp_path / f'stage{number - 1}' / 'clip.pt') if number > 1 else '')
    assert metrics['init_weights'] == str(tmp_path / 'stage8' / 'clip.pt')
    assert metrics['stage2']['recipe']['presence_weight'] == 1.0
    saved = json.loads((tmp_path / 'clip_metrics.json').read_text())
    assert saved['stage1']['steps'] == 2 and saved['stage3']['train_styles'] == 'shaded,flat,flat'
    # the fourth stage at the pipeline's working size with the embedded SAM, on scenes the
    # earlier stages never pooled; the first three on full frames
    fourth = saved['stage4']['recipe']
    assert fourth['working_pixels'] == DEMO_WORKING_PIXELS
    assert fourth['first_scene'] == UPSCALE_POOL_SCENES
    assert fourth['scaled_share'] > 0 == saved['stage3']['recipe']['scaled_share']
    assert all(saved[stage]['recipe']['working_pixels'] == 0 for stage in ('stage1', 'stage2',
                                                                          'stage3'))
    # the fifth: the fourth's recipe on scenes neither pooled, half of them in the varied style
    fifth = saved['stage5']
    assert fifth['train_styles'].split(',').count('varied') == 2
    assert fifth['recipe']['working_pixels'] == DEMO_WORKING_PIXELS
    assert fifth['recipe']['first_scene'] == 2 * UPSCALE_POOL_SCENES
    assert fifth['recipe']['turned_share'] == 0
    # the sixth: the fifth's on scenes none pooled, half of them with objects at any angle
    sixth = saved['stage6']
    assert sixth['train_styles'] == fifth['train_styles']
    assert sixth['recipe']['first_scene'] == 3 * UPSCALE_POOL_SCENES
    assert sixth['recipe']['turned_share'] == 0.5
    # the seventh: the sixth's on scenes none pooled, each object on its zoomed window too, at
    # the pipeline's margin; no earlier stage saw a window
    seventh = saved['stage7']
    assert seventh['train_styles'] == sixth['train_styles']
    assert seventh['recipe']['first_scene'] == 4 * UPSCALE_POOL_SCENES
    assert seventh['recipe']['turned_share'] == 0.5
    assert seventh['recipe']['window_weight'] == 1.0
    assert seventh['recipe']['zoom_context'] == FeatureConfig().zoom_context
    assert all(saved[f'stage{n}']['recipe']['window_weight'] == 0 for n in range(1, 7))
    # the eighth: the seventh's on scenes none pooled (after the tried stage's), smaller objects
    eighth = saved['stage8']['recipe']
    assert saved['stage8']['train_styles'] == seventh['train_styles']
    assert eighth['first_scene'] == 5 * UPSCALE_POOL_SCENES + TRIED_EIGHTH_POOL_SCENES
    assert eighth['window_weight'] == 1.0 and eighth['turned_share'] == 0.5
    assert tuple(eighth['object_scales']) == SMALL_OBJECT_SCALES
    assert tuple(seventh['recipe']['object_scales']) == OBJECT_SCALES
    assert SMALL_OBJECT_SCALES[0] < OBJECT_SCALES[0]
    # the ninth: the eighth's on scenes none pooled (after the tried ninth's), half of them on
    # a table seen at an angle, which no earlier stage saw
    ninth = saved['recipe']
    assert ninth['first_scene'] == (eighth['first_scene'] + SMALL_OBJECTS_POOL_SCENES
                                    + TRIED_NINTH_POOL_SCENES)
    styles = saved['train_styles'].split(',')
    assert styles.count('tabletop') == len(styles) // 2
    assert all('tabletop' not in saved[f'stage{n}']['train_styles'] for n in range(1, 9))
    assert tuple(ninth['object_scales']) == SMALL_OBJECT_SCALES
    assert ninth['window_weight'] == 1.0 and ninth['turned_share'] == 0.5
    full = ClipRecipe.tabletop('w.pt')
    assert full.steps == TABLETOP_STEPS and 'tabletop' in full.eval_styles.split(',')
    # the first two stages at 64 px, the later ones at the bigger input: loading the 64 px
    # weights resampled the positional embedding to its token grid
    config = json.loads((tmp_path / 'clip_config.json').read_text())
    assert config['vision_cfg']['image_size'] == UPSCALED_IMAGE_SIZE
    first = json.loads((tmp_path / 'stage2' / 'clip_config.json').read_text())
    assert first['vision_cfg']['image_size'] == 64
    model, _ = build_clip(str(tmp_path / 'clip_config.json'))
    load_clip_weights(model, tmp_path / 'clip.pt')
    grid = UPSCALED_IMAGE_SIZE // config['vision_cfg']['patch_size']
    assert tuple(model.visual.positional_embedding.shape) == (1 + grid * grid, 128)
    # a token row the first stage trained and the later ones never saw is kept, not zeroed
    assert float(model.token_embedding.weight.detach().abs().sum()) > 0


def test_a_share_of_the_later_stages_scenes_is_drawn_at_other_object_sizes():
    from hybridgl_ros.demo.recipe import OBJECT_SCALES, SCALED_SHARE
    from hybridgl_ros.demo.train_clip import ClipRecipe
    from hybridgl_ros.demo.train_sam import SamRecipe

    assert ClipRecipe().object_scale(5) == SamRecipe().object_scale(5) == 1.0
    clip, sam = ClipRecipe.at_working_size('w.pt'), SamRecipe.at_other_sizes('s.pth')
    scales = [clip.object_scale(i) for i in range(2000)]
    assert scales == [sam.object_scale(i) for i in range(2000)]     # seeded by the index
    scaled = [s for s in scales if s != 1.0]
    assert abs(len(scaled) / len(scales) - SCALED_SHARE) < 0.05
    assert OBJECT_SCALES[0] <= min(scaled) and max(scaled) <= OBJECT_SCALES[1]
    assert min(scaled) < 0.6 and max(scaled) > 1.2


def test_a_share_of_the_last_stages_scenes_has_objects_at_any_angle():
    from hybridgl_ros.demo.train_clip import TURNED_SHARE, ClipRecipe

    assert not any(ClipRecipe.other_renderers('w.pt').any_angle(i) for i in range(500))
    sixth = ClipRecipe.at_any_angle('w.pt')
    turned = [sixth.any_angle(i) for i in range(2000)]
    assert turned == [sixth.any_angle(i) for i in range(2000)]       # seeded by the index
    assert abs(sum(turned) / len(turned) - TURNED_SHARE) < 0.05
    # the scene's size draw is its own: a turned scene is not always a scaled one
    assert {sixth.object_scale(i) == 1.0 for i, t in enumerate(turned) if t} == {True, False}


def test_the_last_stage_trains_at_the_working_size_of_the_embedded_sam():
    from hybridgl_ros.core.models import DEMO_SAM_ARCH
    from hybridgl_ros.demo.train_clip import DEMO_WORKING_PIXELS

    sam = build_sam(str(DEMO_SAM_ARCH))
    assert DEMO_WORKING_PIXELS == sam.image_encoder.img_size ** 2


def test_the_sam_is_trained_in_five_stages_the_later_on_other_renderers_too(tmp_path):
    from hybridgl_ros.demo.train_sam import train_demo_sam

    metrics = train_demo_sam(tmp_path, smoke=True)
    assert (tmp_path / 'stage1' / 'sam.pth').is_file()
    first = metrics['stage1']
    assert first['init_weights'] == '' and first['train_styles'] == 'shaded'
    assert metrics['stage2']['init_weights'] == str(tmp_path / 'stage1' / 'sam.pth')
    assert metrics['stage3']['init_weights'] == str(tmp_path / 'stage2' / 'sam.pth')
    assert metrics['stage4']['init_weights'] == str(tmp_path / 'stage3' / 'sam.pth')
    assert metrics['init_weights'] == str(tmp_path / 'stage4' / 'sam.pth')
    # the middle stages' two steps: one shaded 640x480 scene, one flat scene (another canvas)
    assert metrics['stage3']['train_styles'] == metrics['stage2']['train_styles'] == \
        'shaded,flat,flat'
    saved = json.loads((tmp_path / 'sam_metrics.json').read_text())
    assert saved['stage1']['steps'] == 2 and set(saved['styles']) == {'shaded'}
    # the third stage: scenes no earlier stage saw, half of them at other object sizes; the
    # fourth: scenes no earlier stage saw, half of them in the varied style; the fifth: scenes
    # none saw (nor the fifth stage tried before), half of them on a table before a wall
    assert saved['stage3']['recipe']['scaled_share'] > 0 == \
        saved['stage2']['recipe']['scaled_share']
    assert saved['recipe']['first_scene'] > saved['stage4']['recipe']['first_scene'] > \
        saved['stage3']['recipe']['first_scene'] > saved['stage2']['recipe']['first_scene'] > 0
    assert saved['stage4']['train_styles'] == 'varied,shaded,varied,flat'
    assert saved['train_styles'].split(',').count('tabletop') == 3

    sam = build_sam(str(tmp_path / 'sam_arch.json'))
    state = torch.load(tmp_path / 'sam.pth', weights_only=True)
    sam.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def test_masks_as_sam_draws_them_lose_a_small_objects_corners_not_a_big_ones():
    import numpy as np

    from hybridgl_ros.demo.clip_data import as_sam_draws
    from hybridgl_ros.demo.end_to_end import mask_iou
    from hybridgl_ros.demo.train_clip import SAM_MASK_GRID, ClipRecipe

    assert SAM_MASK_GRID == 64                 # the embedded SAM's 64 x 64 mask logits
    assert ClipRecipe.at_any_angle('w.pt').mask_grid == 0      # the shipped stages: exact
    masks = np.zeros((3, 240, 320), bool)
    masks[0, 20:120, 20:120] = True            # big square: 100 px, 20 cells of 5 px
    masks[1, 150:162, 200:212] = True          # small square: 12 px, about 2.4 cells
    masks[2, 230:232, 300:302] = True          # a dot SAM's grid cannot draw
    drawn = as_sam_draws(masks, SAM_MASK_GRID)
    iou = [mask_iou(m, d) for m, d in zip(masks, drawn)]
    assert iou[0] > 0.95
    assert 0.3 < iou[1] < 0.9                  # a blob where the square was
    assert not drawn[1, 150, 200] and drawn[1, 156, 206]   # its corner cut, its middle kept
    assert (drawn[2] == masks[2]).all()        # kept as it is rather than lost


def test_a_recipe_with_a_mask_grid_trains_on_masks_as_sam_draws_them(tmp_path):
    from dataclasses import replace

    from hybridgl_ros.demo.train_clip import SAM_MASK_GRID

    metrics = train_clip(tmp_path, replace(ClipRecipe.smoke(), mask_grid=SAM_MASK_GRID))
    assert metrics['recipe']['mask_grid'] == SAM_MASK_GRID
    model, _ = build_clip(str(tmp_path / 'clip_config.json'))
    load_clip_weights(model, tmp_path / 'clip.pt')


def test_the_window_stage_pools_each_object_on_the_window_the_pipeline_cuts():
    import numpy as np

    from hybridgl_ros.core.mask_images import zoom_window
    from hybridgl_ros.demo.clip_data import pool_scene, scene_regions
    from hybridgl_ros.demo.scenes import at_working_size, make_scene
    from hybridgl_ros.demo.train_clip import (
        DEMO_WORKING_PIXELS, ZOOM_CONTEXT, ClipRecipe, build_model, make_encoder)

    encoder = make_encoder(build_model(ClipRecipe.on_windows('w.pt').config).eval())
    plain = pool_scene(encoder, 2, 7, 'flat', DEMO_WORKING_PIXELS)
    pooled = pool_scene(encoder, 2, 7, 'flat', DEMO_WORKING_PIXELS, zoom_context=ZOOM_CONTEXT)
    assert plain.windows is None
    objects = len(pooled.objects)
    local, global_, tokens = (pooled.windows.local, pooled.windows.global_,
                              pooled.windows.token_mask)
    assert local.shape[0] == global_.shape[0] == tokens.shape[0] == objects
    # the same inputs as the encoder's zoomed look builds for those masks at run time
    scene = at_working_size(make_scene(2, 7, 'flat'), DEMO_WORKING_PIXELS)
    masks = scene_regions(scene)[:-1]
    builder = encoder.input_builder(scene.image_rgb)
    for k, mask in enumerate(masks):
        rows, columns = zoom_window(mask, ZOOM_CONTEXT)
        expected = builder.window(rows, columns).build(
            torch.from_numpy(np.ascontiguousarray(mask[None, rows, columns])))
        torch.testing.assert_close(local[k].float(), expected.local[0].half().float())
        torch.testing.assert_close(tokens[k].float(), expected.token_mask[0].half().float())
    # zoomed: each object covers more of the token grid on its window than on the frame
    assert (tokens.float().sum(1) > plain.token_mask[:objects].float().sum(1)).all()


def test_window_captions_have_no_size_word_and_match_by_colour_and_shape():
    import numpy as np

    from hybridgl_ros.demo.clip_data import SIZE_WORDS, region_descriptor, window_caption
    from hybridgl_ros.demo.scenes import SceneObject

    rng = np.random.default_rng(0)
    obj = SceneObject('ball', 'red', 'small', (50.0, 50.0), 20.0, 0.0)
    sized = set(SIZE_WORDS['small']) | set(SIZE_WORDS['big']) | {'small', 'big'}
    for _ in range(200):
        text, desc = window_caption(rng, obj)
        assert not sized & set(text.replace('.', '').split())
        assert desc.size is None and desc.matches(region_descriptor(obj))


def test_a_recipe_with_a_window_weight_trains_on_the_windows(tmp_path):
    from dataclasses import replace

    metrics = train_clip(tmp_path, replace(ClipRecipe.smoke(), window_weight=1.0))
    assert metrics['recipe']['window_weight'] == 1.0
    model, _ = build_clip(str(tmp_path / 'clip_config.json'))
    load_clip_weights(model, tmp_path / 'clip.pt')
