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


def test_the_clip_is_trained_in_two_stages_the_second_from_the_first(tmp_path):
    from hybridgl_ros.demo.train_clip import train_demo_clip

    metrics = train_demo_clip(tmp_path, smoke=True)
    assert (tmp_path / 'stage1' / 'clip.pt').is_file() and (tmp_path / 'clip.pt').is_file()
    assert metrics['init_weights'] == str(tmp_path / 'stage1' / 'clip.pt')
    assert metrics['stage1']['init_weights'] == '' and metrics['recipe']['presence_weight'] == 1.0
    saved = json.loads((tmp_path / 'clip_metrics.json').read_text())
    assert saved['stage1']['steps'] == 2 and saved['train_styles'] == 'shaded,flat,flat'
    # the second stage starts from the first stage's weights: a token row the first stage
    # trained and the second never saw is kept, not zeroed
    model, _ = build_clip(str(tmp_path / 'clip_config.json'))
    load_clip_weights(model, tmp_path / 'clip.pt')
    assert float(model.token_embedding.weight.detach().abs().sum()) > 0
