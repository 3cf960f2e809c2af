"""The demo weights shipped in hybridgl_ros/demo_models load through the core's loader."""
import json

import pytest

from hybridgl_ros.core.config import ModelConfig
from hybridgl_ros.core.models import DEMO_MODEL_DIR, load_clip, load_sam
from hybridgl_ros.core.sam_arch import SamArchitecture

_MAX_BYTES = 20 * 2 ** 20


@pytest.mark.parametrize('name', ['clip.pt', 'sam.pth', 'clip_config.json', 'sam_arch.json',
                                  'MODEL_CARD.md'])
def test_demo_model_file_is_shipped_and_small(name):
    path = DEMO_MODEL_DIR / name
    assert path.is_file()
    assert path.stat().st_size < _MAX_BYTES


def test_shipped_clip_loads_with_empty_model_paths():
    model = load_clip(ModelConfig(), 'cpu')
    config = json.loads((DEMO_MODEL_DIR / 'clip_config.json').read_text())
    assert model.visual.image_size == (config['vision_cfg']['image_size'],) * 2
    assert not model.training


def test_shipped_sam_loads_with_empty_model_paths():
    sam = load_sam(ModelConfig(), 'cpu')
    arch = SamArchitecture.from_json(DEMO_MODEL_DIR / 'sam_arch.json')
    assert sam.image_encoder.img_size == arch.img_size


def test_shipped_sam_loads_by_architecture_json_path():
    config = ModelConfig(sam_model_type=str(DEMO_MODEL_DIR / 'sam_arch.json'),
                         sam_checkpoint=str(DEMO_MODEL_DIR / 'sam.pth'))
    sam = load_sam(config, 'cpu')
    assert sam.mask_decoder.num_mask_tokens == 4
