"""Loading the models from local files: CLIP (open_clip), SAM (segment_anything), devices.

Nothing here downloads. A missing file raises :class:`ModelLoadError` naming the file, where it
was looked for and where to get it. Empty weight paths select the embedded demo models shipped
in ``hybridgl_ros/demo_models/`` (made by ``hybridgl train-demo-models``; see their model card).
"""
from __future__ import annotations

import functools
import json
import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
def load_clip(config: ModelConfig, device) -> Any:
    """Builds the open_clip model and loads its weights (eval mode, fp32, on ``device``).

    ``clip_model`` is an open_clip architecture name (``ViT-B-16``) or a path to an open_clip
    model-config JSON; ``clip_weights`` a weights file (state dict, open_clip checkpoint or
    OpenAI TorchScript archive), or ``openai`` to look in the local caches only.
    """
    if uses_demo_clip(config):
        LOG.info('No CLIP weights configured: using the embedded demo model (%s)', DEMO_MODEL_DIR)
        model, _ = build_clip(str(DEMO_CLIP_CONFIG))
        weights = _existing(DEMO_CLIP_WEIGHTS, 'the embedded demo CLIP weights',
                            'reinstall hybridgl_ros or run `hybridgl train-demo-models`')
    else:
        model, _ = build_clip(config.clip_model, config.clip_quick_gelu)
        weights = _clip_weights_path(config)
    load_clip_weights(model, weights)
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

    state = _read_state_dict(path)
    resize_pos_embed(state, model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f'{path} does not match the CLIP architecture: {exc}') from exc


def _read_state_dict(path: Path) -> dict:
    import torch

    try:
        if zipfile.is_zipfile(path) and _is_torchscript(path):
            state = torch.jit.load(str(path), map_location='cpu').state_dict()
            for key in ('input_resolution', 'context_length', 'vocab_size'):
                state.pop(key, None)
        else:
            state = torch.load(str(path), map_location='cpu', weights_only=True)
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            pickle.UnpicklingError) as exc:
        raise ModelLoadError(f'cannot read weights file {path}: {exc}') from exc
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict) or not state:
        raise ModelLoadError(f'{path} holds no state dict')
    if next(iter(state)).startswith('module.'):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('constants.pkl') for name in archive.namelist())


def _clip_weights_path(config: ModelConfig) -> Path:
    if config.clip_weights != 'openai':
        return _existing(Path(config.clip_weights).expanduser(), 'the CLIP weights', CLIP_HELP)
    filename = 'ViT-B-16.pt' if config.clip_model == 'ViT-B-16' else f'{config.clip_model}.pt'
    folders = [Path(config.clip_cache_dir).expanduser()] if config.clip_cache_dir else []
    folders.append(Path('~/.cache/clip').expanduser())
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    looked = ', '.join(str(f / filename) for f in folders)
    raise ModelLoadError(f'CLIP weights not found (looked for {looked}). {CLIP_HELP}')


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
        sam = _build_sam_from_json(DEMO_SAM_ARCH)
        checkpoint = _existing(DEMO_SAM_WEIGHTS, 'the embedded demo SAM checkpoint',
                               'reinstall hybridgl_ros or run `hybridgl train-demo-models`')
    else:
        sam = build_sam(config.sam_model_type)
        url = SAM_URLS.get(config.sam_model_type, 'the place the architecture JSON came from')
        checkpoint = _existing(Path(config.sam_checkpoint).expanduser(),
                               f'the SAM {config.sam_model_type} checkpoint', f'download {url}')
    state = _read_state_dict(checkpoint)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f'{checkpoint} does not match SAM {config.sam_model_type}: '
                             f'{exc}') from exc
    return sam.to(device).eval()


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
        raise ModelLoadError(f'{what} not found: {path}. {how}')
    return path
