"""Model loading from local files: the code path real weights take, on tiny saved models."""
import json

import pytest
import torch

from hybridgl_ros.core.config import ModelConfig
from hybridgl_ros.core.errors import ConfigError, ModelLoadError
from hybridgl_ros.core.models import autocast_dtype, load_clip, resolve_device

from tiny_models import TINY_CLIP_CONFIG


@pytest.fixture(scope='module')
def saved_tiny_clip(tmp_path_factory):
    """A tiny CLIP saved as an open_clip config JSON plus a state-dict file."""
    from open_clip.model import CLIP

    folder = tmp_path_factory.mktemp('saved_clip')
    torch.manual_seed(1)
    model = CLIP(**TINY_CLIP_CONFIG)
    (folder / 'config.json').write_text(json.dumps(TINY_CLIP_CONFIG))
    torch.save(model.state_dict(), folder / 'weights.pt')
    return folder, model


def test_clip_state_dict_round_trips_through_the_loader(saved_tiny_clip):
    folder, original = saved_tiny_clip
    config = ModelConfig(clip_model=str(folder / 'config.json'),
                         clip_weights=str(folder / 'weights.pt'))
    loaded = load_clip(config, torch.device('cpu'))
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_clip_checkpoint_wrapped_in_state_dict_key_with_module_prefix_loads(saved_tiny_clip,
                                                                          tmp_path):
    folder, original = saved_tiny_clip
    wrapped = {'state_dict': {f'module.{k}': v for k, v in original.state_dict().items()}}
    torch.save(wrapped, tmp_path / 'ckpt.pt')
    config = ModelConfig(clip_model=str(folder / 'config.json'),
                         clip_weights=str(tmp_path / 'ckpt.pt'))
    loaded = load_clip(config, torch.device('cpu'))
    assert torch.equal(loaded.visual.proj, original.visual.proj)


def test_missing_clip_weights_name_the_file_and_where_to_get_them(tmp_path):
    missing = tmp_path / 'ViT-B-16.pt'
    with pytest.raises(ModelLoadError, match='ViT-B-16.pt') as info:
        load_clip(ModelConfig(clip_weights=str(missing)), torch.device('cpu'))
    assert 'openai' in str(info.value).lower()


def test_openai_tag_looks_only_in_local_caches(tmp_path):
    config = ModelConfig(clip_weights='openai', clip_cache_dir=str(tmp_path))
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_clip(config, torch.device('cpu'))


def test_corrupt_clip_weights_raise_model_load_error(saved_tiny_clip, tmp_path):
    folder, _ = saved_tiny_clip
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    config = ModelConfig(clip_model=str(folder / 'config.json'), clip_weights=str(bad))
    with pytest.raises(ModelLoadError, match='bad.pt'):
        load_clip(config, torch.device('cpu'))


def test_weights_of_another_architecture_are_refused(saved_tiny_clip, tmp_path):
    folder, _ = saved_tiny_clip
    other = dict(TINY_CLIP_CONFIG, embed_dim=16)
    (tmp_path / 'other.json').write_text(json.dumps(other))
    config = ModelConfig(clip_model=str(tmp_path / 'other.json'),
                         clip_weights=str(folder / 'weights.pt'))
    with pytest.raises(ModelLoadError, match='does not match'):
        load_clip(config, torch.device('cpu'))


def test_missing_sam_checkpoint_names_the_download():
    from hybridgl_ros.core.models import load_sam

    config = ModelConfig(sam_model_type='vit_b', sam_checkpoint='/nonexistent/sam_vit_b.pth')
    with pytest.raises(ModelLoadError, match='sam_vit_b_01ec64.pth'):
        load_sam(config, torch.device('cpu'))


def test_unknown_sam_type_is_a_config_error():
    from hybridgl_ros.core.models import build_sam

    with pytest.raises(ConfigError, match='vit_h'):
        build_sam('vit_x')


def test_cpu_and_parity_run_in_fp32():
    cpu = resolve_device('cpu')
    assert autocast_dtype('auto', cpu, reference_parity=False) is None
    cuda = torch.device('cuda')
    assert autocast_dtype('auto', cuda, reference_parity=False) == torch.float16
    assert autocast_dtype('bf16', cuda, reference_parity=False) == torch.bfloat16
    assert autocast_dtype('auto', cuda, reference_parity=True) is None
