"""Model loading from local files: the code path real weights take, on tiny saved models."""
import argparse
import json
import re

import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import ModelConfig
from hybridgl_ros.core.errors import ConfigError, ModelLoadError
from hybridgl_ros.core.models import (
    DEMO_CLIP_WEIGHTS, DEMO_SAM_WEIGHTS, autocast_dtype, load_clip, resolve_device)

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


def test_openai_tag_looks_only_in_local_caches_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    config = ModelConfig(clip_weights='openai', clip_cache_dir=str(tmp_path))
    with pytest.raises(ModelLoadError) as info:
        load_clip(config, torch.device('cpu'))
    message = str(info.value)
    assert (f'{tmp_path} (timm/vit_base_patch16_clip_224.openai: open_clip_model.safetensors or '
            'open_clip_pytorch_model.bin)') in message and str(tmp_path / 'ViT-B-16.pt') in message
    assert 'nothing is downloaded' in message


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


# ------------------------------------------------------------------ bad weight files, each kind
def _clip_config(folder, weights):
    return ModelConfig(clip_model=str(folder / 'config.json'), clip_weights=str(weights))


def _load_error(folder, weights) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_clip(_clip_config(folder, weights), torch.device('cpu'))
    message = str(info.value)
    assert str(weights) in message and 'weights_only' not in message, message
    assert len(message) < 600, f'{len(message)} characters: {message}'
    return message


def test_an_empty_weights_file_says_it_is_empty(saved_tiny_clip, tmp_path):
    folder, _ = saved_tiny_clip
    (tmp_path / 'empty.pt').write_bytes(b'')
    assert 'is empty (0 bytes)' in _load_error(folder, tmp_path / 'empty.pt')


@pytest.mark.parametrize('head', [b'', b'\x80\x02', b'PK\x03\x04'], ids=['random', 'pickle',
                                                                          'zip'])
def test_random_bytes_are_not_a_torch_checkpoint(saved_tiny_clip, tmp_path, head):
    folder, _ = saved_tiny_clip
    bad = tmp_path / 'random.pt'
    bad.write_bytes(head + bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)))
    message = _load_error(folder, bad)
    assert 'not a torch checkpoint' in message or 'not a complete torch checkpoint' in message
    assert 'corrupt or incomplete download?' in message


def test_a_truncated_checkpoint_is_an_incomplete_download(saved_tiny_clip, tmp_path):
    folder, _ = saved_tiny_clip
    data = (folder / 'weights.pt').read_bytes()
    (tmp_path / 'cut.pt').write_bytes(data[:len(data) // 2])
    assert 'corrupt or incomplete download?' in _load_error(folder, tmp_path / 'cut.pt')


@pytest.mark.parametrize('content', [{'epoch': 3, 'name': 'run'}, [1, 2, 3], 5, {}],
                         ids=['dict', 'list', 'int', 'empty'])
def test_a_torch_file_without_tensors_is_refused_by_name(saved_tiny_clip, tmp_path, content):
    folder, _ = saved_tiny_clip
    torch.save(content, tmp_path / 'no_tensors.pt')
    message = _load_error(folder, tmp_path / 'no_tensors.pt')
    assert 'not a model checkpoint' in message


def test_pickled_python_objects_are_refused_not_run(saved_tiny_clip, tmp_path):
    folder, original = saved_tiny_clip
    torch.save({'args': argparse.Namespace(lr=0.1), 'state_dict': original.state_dict()},
               tmp_path / 'with_args.pt')
    message = _load_error(folder, tmp_path / 'with_args.pt')
    assert 'pickled Python objects' in message and 'Namespace' in message


def test_the_checkpoint_of_another_model_is_summarised(saved_tiny_clip):
    folder, _ = saved_tiny_clip
    message = _load_error(folder, DEMO_SAM_WEIGHTS)  # SAM's weights given as CLIP's
    assert re.search(r'\d+ of its \d+ weights are missing', message), message
    assert re.search(r'\d+ weights in the file are unknown to it', message), message
    assert 'looks like a SAM checkpoint' in message


def test_weights_of_another_size_name_the_shapes(saved_tiny_clip, tmp_path):
    folder, _ = saved_tiny_clip
    other = dict(TINY_CLIP_CONFIG, embed_dim=16)
    (tmp_path / 'config.json').write_text(json.dumps(other))
    message = _load_error(tmp_path, folder / 'weights.pt')
    assert 'have another shape (' in message and 'file 64x32, model 64x16' in message


def test_a_bad_sam_checkpoint_is_found_before_the_architecture_is_built(tmp_path):
    """The architecture JSON does not exist: building first would report that instead."""
    from hybridgl_ros.core.models import load_sam

    (tmp_path / 'sam.pth').write_bytes(b'')
    config = ModelConfig(sam_model_type=str(tmp_path / 'no_such_arch.json'),
                         sam_checkpoint=str(tmp_path / 'sam.pth'))
    with pytest.raises(ModelLoadError, match='sam.pth is empty'):
        load_sam(config, torch.device('cpu'))


def test_missing_files_are_reported_before_any_model_loads(tmp_path):
    from hybridgl_ros.core.models import check_model_files

    config = ModelConfig(clip_weights=str(DEMO_CLIP_WEIGHTS),
                         sam_checkpoint=str(tmp_path / 'sam_vit_h_4b8939.pth'))
    with pytest.raises(ModelLoadError, match='sam_vit_h_4b8939.pth'):
        check_model_files(config)
    with pytest.raises(ModelLoadError, match='is a folder'):
        check_model_files(ModelConfig(clip_weights=str(tmp_path)))


# ------------------------------------------------------------ clip_weights: openai (open_clip 3)
OPENAI_REPO = 'models--timm--vit_base_patch16_clip_224.openai'


def _fake_hub_cache(hub, state, filename='open_clip_model.safetensors'):
    """The Hugging Face hub cache layout: blobs, snapshots/<rev>/<file> -> blob, refs/main."""
    from safetensors.torch import save_file

    repo = hub / OPENAI_REPO
    (repo / 'blobs').mkdir(parents=True)
    blob = repo / 'blobs' / '0123abcd'
    if filename.endswith('.safetensors'):
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(blob))
    else:
        torch.save(state, blob)
    snapshot = repo / 'snapshots' / 'f00d'
    snapshot.mkdir(parents=True)
    (snapshot / filename).symlink_to(blob)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text('f00d')
    return snapshot / filename


@pytest.mark.parametrize('where', ['HF_HUB_CACHE', 'HF_HOME', 'clip_cache_dir'])
def test_openai_finds_open_clip_3s_hub_cache_and_loads_the_safetensors(
        saved_tiny_clip, tmp_path, monkeypatch, where):
    from hybridgl_ros.core.models import find_openai_clip_weights

    folder, original = saved_tiny_clip
    for name in ('HF_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'):
        monkeypatch.delenv(name, raising=False)
    hub = tmp_path / 'hf' / 'hub' if where == 'HF_HOME' else tmp_path / 'hub'
    expected = _fake_hub_cache(hub, original.state_dict())
    cache_dir = str(hub) if where == 'clip_cache_dir' else ''
    if where != 'clip_cache_dir':
        monkeypatch.setenv(where, str(hub if where == 'HF_HUB_CACHE' else hub.parent))
    found = find_openai_clip_weights('ViT-B-16', cache_dir)
    assert found == expected
    loaded = load_clip(_clip_config(folder, found), torch.device('cpu'))
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_openai_finds_the_torch_file_of_the_hub_cache(saved_tiny_clip, tmp_path):
    from hybridgl_ros.core.models import find_openai_clip_weights

    _, original = saved_tiny_clip
    expected = _fake_hub_cache(tmp_path, original.state_dict(), 'open_clip_pytorch_model.bin')
    assert find_openai_clip_weights('ViT-B-16', str(tmp_path)) == expected


def test_openai_finds_the_legacy_clip_cache_file(tmp_path):
    from hybridgl_ros.core.models import find_openai_clip_weights

    (tmp_path / 'ViT-B-16.pt').write_bytes(b'x')
    assert find_openai_clip_weights('ViT-B-16', str(tmp_path)) == tmp_path / 'ViT-B-16.pt'
