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


def test_the_clip_is_trained_in_three_stages_each_from_the_one_before(tmp_path):
    from hybridgl_ros.demo.train_clip import UPSCALED_IMAGE_SIZE, train_demo_clip

    metrics = train_demo_clip(tmp_path, smoke=True)
    for stage in ('stage1', 'stage2'):
        assert (tmp_path / stage / 'clip.pt').is_file()
    assert metrics['stage1']['init_weights'] == ''
    assert metrics['stage2']['init_weights'] == str(tmp_path / 'stage1' / 'clip.pt')
    assert metrics['init_weights'] == str(tmp_path / 'stage2' / 'clip.pt')
    assert metrics['stage2']['recipe']['presence_weight'] == 1.0
    saved = json.loads((tmp_path / 'clip_metrics.json').read_text())
    assert saved['stage1']['steps'] == 2 and saved['train_styles'] == 'shaded,flat,flat'
    # the first two stages at 64 px, the last at the bigger input: loading the 64 px weights
    # resampled the positional embedding to its token grid
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


def test_the_sam_is_trained_in_two_stages_the_second_on_flat_scenes_too(tmp_path):
    from hybridgl_ros.demo.train_sam import train_demo_sam

    metrics = train_demo_sam(tmp_path, smoke=True)
    assert (tmp_path / 'stage1' / 'sam.pth').is_file()
    first = metrics['stage1']
    assert first['init_weights'] == '' and first['train_styles'] == 'shaded'
    assert metrics['init_weights'] == str(tmp_path / 'stage1' / 'sam.pth')
    # the second stage's two steps: one shaded 640x480 scene, one flat scene (another canvas)
    assert metrics['train_styles'] == 'shaded,flat,flat'
    saved = json.loads((tmp_path / 'sam_metrics.json').read_text())
    assert saved['stage1']['steps'] == 2 and set(saved['styles']) == {'shaded'}
    sam = build_sam(str(tmp_path / 'sam_arch.json'))
    state = torch.load(tmp_path / 'sam.pth', weights_only=True)
    sam.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
