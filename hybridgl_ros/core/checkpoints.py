"""Reading weight files safely and loading them into a model, with errors a user can act on.

A weight file is checked before any (large) architecture is built: it must exist, be non-empty
and be one of the formats below; it must hold tensors; and their names and shapes must match
the model, else the error summarises the difference (counts and a few names) instead of listing
every key. Every message names the file. Formats (told apart by their first bytes, not their
names: a Hugging Face cache stores files as suffix-less blobs):

* a torch checkpoint (``torch.save``: a zip archive, or the legacy pickle), loaded with
  ``weights_only=True``: tensors only, no code from the file runs;
* an OpenAI CLIP TorchScript archive (``ViT-B-16.pt``);
* safetensors (``open_clip_model.safetensors`` in the Hugging Face cache).

A state dict may be wrapped in ``{'state_dict': ...}`` and its keys prefixed with ``module.``
(DataParallel); entries that are not tensors (``epoch``, ...) are ignored.
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hybridgl_ros.core.errors import ModelLoadError

CORRUPT = 'corrupt or incomplete download?'
EXAMPLES = 3


def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a weight file, as float32 where they are floating point.

    Raises:
        ModelLoadError: the file is empty, not a known format, unreadable or holds no tensors.
    """
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f'{path} is empty (0 bytes): {CORRUPT} Get the file again')
    with path.open('rb') as stream:
        head = stream.read(16)
    if _is_safetensors(head, size):
        state = _load_safetensors(path)
    elif head.startswith(b'PK\x03\x04') or head[:1] == b'\x80':  # zip archive / pickle
        state = _load_torch(path)
    else:
        raise ModelLoadError(f'{path} is not a torch checkpoint ({CORRUPT}): it starts with '
                             f'bytes {head[:8].hex(" ")}')
    return _tensors_only(path, state)


def load_matching(model, state: Mapping[str, Any], path: Path, what: str) -> None:
    """Loads ``state`` into ``model`` if every name and shape match, else says how they differ.

    Args:
        model: a torch module.
        state: from :func:`read_state_dict`.
        path: the file ``state`` came from (for the message).
        what: the model in words, e.g. ``'SAM vit_h'``.
    """
    difference = describe_mismatch(model.state_dict(), state)
    if difference:
        raise ModelLoadError(f'{path} does not match {what}: {difference}')
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).strip().split('\n')[0]
        raise ModelLoadError(f'{path} does not load into {what}: {first_line}') from exc


def describe_mismatch(expected: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    """Missing, unexpected and reshaped weights of ``state`` against ``expected``, in a
    sentence of counts and a few names ('' if they match)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state
                and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f'{len(missing)} of its {len(expected)} weights are missing '
                     f'({_examples(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} weights in the file are unknown to it '
                     f'({_examples(unexpected)})')
    if reshaped:
        shapes = ', '.join(f'{k}: file {_shape(state[k])}, model {_shape(expected[k])}'
                           for k in reshaped[:EXAMPLES])
        parts.append(f'{len(reshaped)} weights have another shape ({shapes}'
                     f'{", ..." if len(reshaped) > EXAMPLES else ""})')
    if not parts:
        return ''
    return '; '.join(parts) + _kind_hint(state)


def _examples(names: list[str]) -> str:
    shown = ', '.join(names[:EXAMPLES])
    return f'e.g. {shown}, ...' if len(names) > EXAMPLES else shown


def _shape(tensor) -> str:
    return 'x'.join(str(n) for n in tensor.shape) or 'scalar'


def _kind_hint(state: Mapping[str, Any]) -> str:
    keys = list(state)
    if any(k.startswith('image_encoder.') for k in keys) and any(
            k.startswith('mask_decoder.') for k in keys):
        return '. The file looks like a SAM checkpoint'
    if any(k.startswith('visual.') for k in keys):
        return '. The file looks like a CLIP checkpoint'
    return '. Is it a checkpoint of another model?'


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON header."""
    if len(head) < 9:
        return False
    header_len = struct.unpack('<Q', head[:8])[0]
    return head[8:9] == b'{' and 0 < header_len <= size - 8


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device='cpu')
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f'{path} is not a readable safetensors file ({CORRUPT}): '
                             f'{exc}') from exc


def _load_torch(path: Path) -> Any:
    import torch

    try:
        if zipfile.is_zipfile(path) and _is_torchscript(path):
            state = torch.jit.load(str(path), map_location='cpu').state_dict()
            for key in ('input_resolution', 'context_length', 'vocab_size'):
                state.pop(key, None)
            return state
        return torch.load(str(path), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(_unpickling_reason(path, str(exc))) from exc
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            TypeError) as exc:
        raise ModelLoadError(f'{path} is not a complete torch checkpoint ({CORRUPT}): '
                             f'{_first_line(str(exc))}') from exc


def _unpickling_reason(path: Path, message: str) -> str:
    """torch's weights_only refusal in our words (never its advice to load unsafely)."""
    cause = message.split('WeightsUnpickler error:')[-1].strip()
    cause = _first_line(cause)
    if 'Unsupported global' in cause:
        return (f'{path} holds pickled Python objects besides tensors ({cause}); only tensors '
                'are loaded, no code from a checkpoint runs: save the state dict alone '
                '(torch.save(model.state_dict(), ...)) from a copy you trust')
    return f'{path} is not a torch checkpoint ({CORRUPT}): {cause}'


def _first_line(text: str) -> str:
    """The first sentence of an error message (never torch's weights_only advice)."""
    lines = [line.strip() for line in text.strip().split('\n') if line.strip()]
    lines = [line for line in lines if 'weights_only' not in line]
    first = lines[0] if lines else 'unreadable'
    return first.split('. ')[0].rstrip('.')[:300]


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('constants.pkl') for name in archive.namelist())


def _tensors_only(path: Path, state: Any) -> dict[str, Any]:
    import torch

    if isinstance(state, Mapping) and isinstance(state.get('state_dict'), Mapping):
        state = state['state_dict']
    if not isinstance(state, Mapping):
        raise ModelLoadError(f'{path} holds a {type(state).__name__}, not a state dict of '
                             'tensors: not a model checkpoint')
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ', '.join(str(k) for k in list(state)[:EXAMPLES]) or 'none'
        raise ModelLoadError(f'{path} holds no tensors (a mapping of {len(state)} entries; '
                             f'keys: {keys}): not a model checkpoint')
    if all(k.startswith('module.') for k in tensors):
        tensors = {k[len('module.'):]: v for k, v in tensors.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
