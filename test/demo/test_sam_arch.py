"""SamArchitecture: JSON round trip, errors, and a Sam the stock generator runs on."""
import numpy as np
import pytest

from hybridgl_ros.core.errors import ModelLoadError
from hybridgl_ros.core.sam_arch import SamArchitecture, build_sam

TINY = SamArchitecture(
    img_size=64, patch_size=16, encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=2,
    encoder_global_attn_indexes=(), window_size=0, use_rel_pos=False, prompt_embed_dim=32,
    mask_in_chans=4, decoder_num_heads=2, decoder_mlp_dim=64, iou_head_hidden_dim=32)


def test_architecture_round_trips_through_json(tmp_path):
    TINY.to_json(tmp_path / 'arch.json')
    assert SamArchitecture.from_json(tmp_path / 'arch.json') == TINY


def test_unknown_architecture_field_raises_model_load_error(tmp_path):
    (tmp_path / 'arch.json').write_text('{"img_size": 64, "colour": "red"}')
    with pytest.raises(ModelLoadError, match='colour'):
        SamArchitecture.from_json(tmp_path / 'arch.json')


def test_missing_architecture_file_raises_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match='nope.json'):
        SamArchitecture.from_json(tmp_path / 'nope.json')


def test_default_architecture_has_vit_b_sizes():
    arch = SamArchitecture()
    assert (arch.encoder_embed_dim, arch.encoder_depth, arch.encoder_num_heads) == (768, 12, 12)
    assert arch.embedding_side == 64


def test_built_sam_has_the_architecture_sizes():
    sam = build_sam(TINY)
    assert sam.image_encoder.img_size == 64
    assert sam.prompt_encoder.image_embedding_size == (4, 4)
    assert sam.mask_decoder.num_mask_tokens == 4
    assert not sam.training


def test_stock_automatic_mask_generator_runs_on_built_sam():
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    torch.manual_seed(0)
    generator = SamAutomaticMaskGenerator(build_sam(TINY), points_per_side=2,
                                          pred_iou_thresh=0.0, stability_score_thresh=0.0)
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 10:30] = 200
    with torch.inference_mode():
        records = generator.generate(image)
    assert all(r['segmentation'].shape == (48, 64) for r in records)
