"""``hybridgl segment`` end to end through the real loaders, SAM generator and open_clip code,
on tiny randomly initialised models saved to files the way users' weights are."""
import json

import cv2
import numpy as np
import pytest
import torch

from hybridgl_ros.cli import main
from hybridgl_ros.core.sam_arch import SamArchitecture, build_sam

from tiny_models import TINY_CLIP_CONFIG

TINY_SAM = SamArchitecture(img_size=128, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                           encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=4,
                           prompt_embed_dim=32, decoder_mlp_dim=64, decoder_num_heads=2,
                           iou_head_hidden_dim=32)


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    from open_clip.model import CLIP

    folder = tmp_path_factory.mktemp('models')
    torch.manual_seed(0)
    (folder / 'clip.json').write_text(json.dumps(TINY_CLIP_CONFIG))
    torch.save(CLIP(**TINY_CLIP_CONFIG).state_dict(), folder / 'clip.pt')
    TINY_SAM.to_json(folder / 'sam.json')
    torch.save(build_sam(TINY_SAM).state_dict(), folder / 'sam.pth')
    return folder


def model_args(folder):
    # random SAM weights predict meaningless quality scores: let every mask through
    return ['--clip-model', str(folder / 'clip.json'), '--clip-weights', str(folder / 'clip.pt'),
            '--sam-type', str(folder / 'sam.json'), '--sam-checkpoint', str(folder / 'sam.pth'),
            '--device', 'cpu', '--set', 'proposals.pred_iou_thresh=0',
            '--set', 'proposals.stability_score_thresh=0',
            '--set', 'proposals.min_mask_region_area=0']


def test_segment_prints_json_and_writes_an_overlay(model_files, scene_rgb, tmp_path, capsys):
    image = tmp_path / 'scene.png'
    cv2.imwrite(str(image), cv2.cvtColor(scene_rgb, cv2.COLOR_RGB2BGR))
    overlay = tmp_path / 'overlay.png'
    status = main(['segment', str(image), 'the red square on the left', '--json',
                   '--out', str(overlay)] + model_args(model_files))
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result['parse']['direction'] == 'left'
    assert result['found'] == (len(result['matching_probs']) > 0)
    written = cv2.imread(str(overlay))
    assert written is not None and written.shape == scene_rgb.shape


def test_missing_image_is_a_clean_error(model_files, tmp_path, capsys):
    status = main(['segment', str(tmp_path / 'nope.png'), 'a cup'] + model_args(model_files))
    assert status == 2 and 'no such image file' in capsys.readouterr().err
    (tmp_path / 'junk.png').write_bytes(b'not an image')
    status = main(['segment', str(tmp_path / 'junk.png'), 'a cup'] + model_args(model_files))
    err = capsys.readouterr().err
    assert status == 2 and 'cannot read image' in err and 'junk.png' in err


def test_missing_checkpoint_names_the_file(model_files, scene_rgb, tmp_path, capsys):
    image = tmp_path / 'scene.png'
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    args = model_args(model_files)
    args[args.index('--sam-checkpoint') + 1] = str(tmp_path / 'sam_missing.pth')
    assert main(['segment', str(image), 'a cup'] + args) == 2
    assert 'sam_missing.pth' in capsys.readouterr().err


def test_segment_explains_its_choice_with_the_embedded_models(tmp_path, capsys):
    from hybridgl_ros.demo.scenes import make_scene

    scene = make_scene(3001, 0)
    image = tmp_path / 'scene.png'
    cv2.imwrite(str(image), cv2.cvtColor(scene.image_rgb, cv2.COLOR_RGB2BGR))
    overlay = tmp_path / 'explained.png'
    obj = scene.objects[0]
    text = f'the {obj.colour} {obj.shape}'
    assert main(['segment', str(image), text, '--explain', '--out', str(overlay),
                 '--device', 'cpu']) == 0
    out = capsys.readouterr().out
    assert 'softmax(R)' in out and '<- chosen' in out and 'relation none' in out
    written = cv2.imread(str(overlay))
    height, width = scene.image_rgb.shape[:2]
    assert written.shape == (height, 2 * width, 3)  # overlay | spatial map A
    assert main(['segment', str(image), text, '--explain', '--json', '--device', 'cpu']) == 0
    explained = json.loads(capsys.readouterr().out)['explanation']
    assert explained['chosen'] in explained['candidates']
    assert len(explained['similarities']) == len(explained['boxes_xywh'])
