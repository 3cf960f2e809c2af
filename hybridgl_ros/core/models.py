"""Loading the models from local files: CLIP (open_clip), SAM (segment_anything), devices.

Nothing here downloads. A missing file raises :class:`ModelLoadError` naming the file, where it
was looked for and where to get it; a weight file is read and checked before its architecture
is built (:mod:`hybridgl_ros.core.checkpoints`). Empty weight paths select the embedded demo
models shipped in ``hybridgl_ros/demo_models/`` (made by ``hybridgl train-demo-models``; see
their model card). ``clip_weights: openai`` finds what open_clip itself caches (see
:func:`find_openai_clip_weights`).
"""
from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridgl_ros.core.checkpoints import load_matching, read_state_dict
from hybridgl_ros.core.config import ModelConfig
from hybridgl_ros.core.errors import ConfigError, ModelLoadError

LOG = logging.getLogger(__name__)

DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / 'demo_models'
DEMO_CLIP_CONFIG = DEMO_MODEL_DIR / 'clip_config.json'
DEMO_CLIP_WEIGHTS = DEMO_MODEL_DIR / 'clip.pt'
DEMO_SAM_ARCH = DEMO_MODEL_DIR / 'sam_arch.json'
DEMO_SAM_WEIGHTS = DEMO_MODEL_DIR / 'sam.pth'

SAM_URLS = {
    'vit_h': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth',
    'vit_l': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth',
    'vit_b': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth',
}
CLIP_HELP = ('OpenAI ViT-B/16 weights: the file ViT-B-16.pt from the URL in open_clip\'s '
             'pretrained table (open_clip.pretrained.get_pretrained_cfg("ViT-B-16", "openai")'
             '["url"]), or run once with network: python -c "import open_clip; '
             'open_clip.create_model(\'ViT-B-16\', pretrained=\'openai\')"')


def resolve_device(name: str):
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is a ConfigError."""
    import torch

    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('models.device is cuda but torch sees no CUDA device')
    return torch.device(name)


@dataclass(frozen=True)
class StageDtypes:
    """Autocast dtype per stage (None = float32).

    Attributes:
        sam_encoder: SAM's image encoder (its output is cast back to float32; SAM's prompt
            decoder, scores and thresholds always run in float32).
        clip: the CLIP passes: mask features, GEM and text.
    """

    sam_encoder: Any = None
    clip: Any = None


#: Under 'auto' on a CPU with native bfloat16, SAM image encoders with at least this many
#: parameters run in bfloat16: vit_b (89 M) measured 2.6x faster, vit_h 2.7x. The embedded demo
#: SAM (under 1 M) is faster in float32.
BF16_MIN_SAM_ENCODER_PARAMETERS = 20_000_000


def stage_dtypes(precision: str, device, reference_parity: bool,
                 sam_encoder_parameters: int = 0) -> StageDtypes:
    """The autocast dtypes of ``models.precision`` on ``device``.

    'fp32' and parity mode: float32 everywhere. 'fp16' / 'bf16': that dtype everywhere.
    'auto': float16 everywhere on CUDA. On a CPU with native bfloat16 (AVX512-BF16 or AMX):
    bfloat16 for SAM's image encoder when it has at least
    ``BF16_MIN_SAM_ENCODER_PARAMETERS`` parameters, float32 for CLIP (measured: bfloat16 CLIP
    changes which masks win on the parity cases, see the README's "Speed and memory"). Other
    CPUs emulate bfloat16 slowly: float32.
    """
    import torch

    if reference_parity or precision == 'fp32':
        return StageDtypes()
    if precision in ('fp16', 'bf16'):
        dtype = torch.float16 if precision == 'fp16' else torch.bfloat16
        return StageDtypes(dtype, dtype)
    if device.type == 'cuda':
        return StageDtypes(torch.float16, torch.float16)
    large = sam_encoder_parameters >= BF16_MIN_SAM_ENCODER_PARAMETERS
    return StageDtypes(sam_encoder=torch.bfloat16 if large and cpu_has_native_bf16() else None)


def autocast_dtype(precision: str, device, reference_parity: bool):
    """The autocast dtype of the CLIP passes, or None for float32 (see :func:`stage_dtypes`)."""
    return stage_dtypes(precision, device, reference_parity).clip


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux CPU flags avx512_bf16 or amx_bf16)."""
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith('flags')), '').split()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def uses_demo_clip(config: ModelConfig) -> bool:
    return not config.clip_weights


def uses_demo_sam(config: ModelConfig) -> bool:
    return not config.sam_checkpoint


# ---------------------------------------------------------------------------------------- CLIP
def check_model_files(config: ModelConfig) -> None:
    """Raises ModelLoadError if a configured weight file is missing (before anything loads)."""
    if not uses_demo_clip(config):
        _clip_weights_path(config)
    if not uses_demo_sam(config):
        _sam_checkpoint_path(config)


def load_clip(config: ModelConfig, device) -> Any:
    """Builds the open_clip model and loads its weights (eval mode, fp32, on ``device``).

    ``clip_model`` is an open_clip architecture name (``ViT-B-16``) or a path to an open_clip
    model-config JSON; ``clip_weights`` a weights file (state dict, open_clip checkpoint, OpenAI
    TorchScript archive or safetensors), or ``openai`` to look in the local caches only.
    """
    from open_clip.factory import resize_pos_embed

    if uses_demo_clip(config):
        LOG.info('No CLIP weights configured: using the embedded demo model (%s)', DEMO_MODEL_DIR)
        weights = _existing(DEMO_CLIP_WEIGHTS, 'the embedded demo CLIP weights',
                            'reinstall hybridgl_ros (or retrain them: demo_models/MODEL_CARD.md '
                            '"Reproducing")')
        state = read_state_dict(weights)
        model, _ = build_clip(str(DEMO_CLIP_CONFIG))
    else:
        weights = _clip_weights_path(config)
        state = read_state_dict(weights)
        model, _ = build_clip(config.clip_model, config.clip_quick_gelu)
    resize_pos_embed(state, model)
    load_matching(model, state, weights, f'the CLIP architecture {config.clip_model}')
    return model.to(device).eval()


def build_clip(name_or_json: str, quick_gelu: bool = True) -> tuple[Any, dict]:
    """A randomly initialised open_clip CLIP and its config dict (architecture only)."""
    import open_clip

    if name_or_json.endswith('.json'):
        path = _existing(Path(name_or_json), 'the CLIP model config', 'check models.clip_model')
        try:
            cfg = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f'cannot read CLIP model config {path}: {exc}') from exc
        cfg = cfg.get('model_cfg', cfg)
        return open_clip.model.CLIP(**cfg), cfg
    cfg = open_clip.get_model_config(name_or_json)
    if cfg is None:
        raise ConfigError(f'unknown open_clip architecture {name_or_json!r}; give a name from '
                          'open_clip.list_models() or a model-config JSON path')
    model = open_clip.create_model(name_or_json, pretrained=None, load_weights=False,
                                   force_quick_gelu=quick_gelu)
    return model, cfg


def load_clip_weights(model, path: Path) -> None:
    """Loads a CLIP weights file into ``model`` (ModelLoadError if unreadable or mismatched)."""
    from open_clip.factory import resize_pos_embed

    state = read_state_dict(path)
    resize_pos_embed(state, model)
    load_matching(model, state, path, 'the CLIP architecture')


def _clip_weights_path(config: ModelConfig) -> Path:
    if config.clip_weights != 'openai':
        return _existing(Path(config.clip_weights).expanduser(), 'the CLIP weights', CLIP_HELP)
    return find_openai_clip_weights(config.clip_model, config.clip_cache_dir)


def find_openai_clip_weights(clip_model: str, cache_dir: str = '') -> Path:
    """The OpenAI weights of ``clip_model`` where open_clip keeps them, never downloading.

    open_clip 3.x fetches them from the Hugging Face hub (ViT-B-16: the repository
    ``timm/vit_base_patch16_clip_224.openai``, file ``open_clip_model.safetensors`` or
    ``open_clip_pytorch_model.bin``) into the hub cache: ``cache_dir`` if given (open_clip's
    ``cache_dir``), else ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``.
    Older open_clip versions kept the OpenAI file (``ViT-B-16.pt``) in ``~/.cache/clip``.
    """
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    pretrained = open_clip.get_pretrained_cfg(clip_model, 'openai') or {}
    if not pretrained:
        raise ConfigError(f'models.clip_weights is openai, but open_clip has no OpenAI weights '
                          f'for {clip_model!r}: give a weights file instead')
    repo_id, names = _hub_files(pretrained.get('hf_hub', ''))
    looked = []
    for hub in _hub_caches(cache_dir) if repo_id else []:
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=str(hub))
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        looked.append(f'{hub} ({repo_id}: {" or ".join(names)})')
    legacy = os.path.basename(pretrained.get('url', '')) or f'{clip_model}.pt'
    for folder in ([Path(cache_dir).expanduser()] if cache_dir else []) + [
            Path('~/.cache/clip').expanduser()]:
        if (folder / legacy).is_file():
            return folder / legacy
        looked.append(str(folder / legacy))
    raise ModelLoadError(f'OpenAI CLIP weights for {clip_model} not found in the local caches '
                         f'(looked in {"; ".join(looked)}); nothing is downloaded at run time. '
                         f'{CLIP_HELP}')


def _hub_files(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's 'org/model/' or 'org/model/file' -> repository id and the files it tries
    (the safetensors alternative first, as open_clip does)."""
    repo_id, filename = os.path.split(hf_hub)
    if not filename:
        return repo_id, ['open_clip_model.safetensors', 'open_clip_pytorch_model.bin']
    if filename.endswith(('.bin', '.pth')):
        return repo_id, [filename[:-4] + '.safetensors', filename]
    return repo_id, [filename]


def _hub_caches(cache_dir: str) -> list[Path]:
    """Hugging Face hub cache folders to look in, first match wins."""
    if cache_dir:
        return [Path(cache_dir).expanduser()]
    if os.environ.get('HF_HUB_CACHE'):
        return [Path(os.environ['HF_HUB_CACHE']).expanduser()]
    home = os.environ.get('HF_HOME') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or '~/.cache', 'huggingface')
    return [Path(home).expanduser() / 'hub']


def text_tokenizer(model) -> Any:
    """open_clip's BPE tokenizer (shipped with open_clip) at the model's context length."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=int(model.context_length))


# ----------------------------------------------------------------------------------------- SAM
def load_sam(config: ModelConfig, device) -> Any:
    """Builds SAM (vit_h/vit_l/vit_b, or an architecture JSON) and loads its checkpoint."""
    if uses_demo_sam(config):
        LOG.info('No SAM checkpoint configured: using the embedded demo model (%s)',
                 DEMO_MODEL_DIR)
        checkpoint = _existing(DEMO_SAM_WEIGHTS, 'the embedded demo SAM checkpoint',
                               'reinstall hybridgl_ros (or retrain them: '
                               'demo_models/MODEL_CARD.md "Reproducing")')
        state = read_state_dict(checkpoint)
        sam, what = _build_sam_from_json(DEMO_SAM_ARCH), 'the embedded demo SAM'
    else:
        checkpoint = _sam_checkpoint_path(config)
        state = read_state_dict(checkpoint)
        sam, what = build_sam(config.sam_model_type), f'SAM {config.sam_model_type}'
    load_matching(sam, state, checkpoint, what)
    return sam.to(device).eval()


def _sam_checkpoint_path(config: ModelConfig) -> Path:
    url = SAM_URLS.get(config.sam_model_type, 'the place the architecture JSON came from')
    return _existing(Path(config.sam_checkpoint).expanduser(),
                     f'the SAM {config.sam_model_type} checkpoint', f'download {url}')


def build_sam(model_type: str) -> Any:
    """A randomly initialised SAM of a registry type or an architecture JSON."""
    if model_type.endswith('.json'):
        return _build_sam_from_json(Path(model_type))
    from segment_anything import sam_model_registry

    if model_type not in SAM_URLS:
        raise ConfigError(f'models.sam_model_type must be vit_h, vit_l, vit_b or a SAM '
                          f'architecture JSON path, not {model_type!r}')
    return sam_model_registry[model_type](checkpoint=None)


def _build_sam_from_json(path: Path) -> Any:
    from hybridgl_ros.core.sam_arch import SamArchitecture, build_sam as build_from_arch

    path = _existing(path, 'the SAM architecture JSON', 'check models.sam_model_type')
    return build_from_arch(SamArchitecture.from_json(path))


def _existing(path: Path, what: str, how: str) -> Path:
    if not path.is_file():
        kind = 'is a folder, not a file' if path.is_dir() else 'not found'
        raise ModelLoadError(f'{what} {kind}: {path}. {how}')
    return path
