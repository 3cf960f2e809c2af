"""On-disk cache of frames (proposals, mask features, GEM tokens) keyed by config and image.

A frame depends on the proposal, feature and GEM settings, the models and their weights, the
numeric mode (parity, precision, device) and the code that computes it (:func:`code_digest`:
an upgrade that changes the masks is a new key) — never on the text or the spatial-guidance
settings (the GEM tokens are left out of a frame when coherence is off: such a frame is
recomputed, and overwritten, by a run that needs them). So a second run with other guidance
switches reuses every frame and skips SAM and CLIP.

The SAM proposals alone are cached too, keyed by the proposal and SAM settings only: a run
with another feature mode (Table 3) recomputes the CLIP features but not SAM.

Layout: ``<root>/<key>/<image stem>-<content hash>.npz``, one file per image (masks bit-packed,
tensors as numpy arrays), and ``<root>/<key>/config.json`` saying what the key stands for;
proposals under ``<root>/proposals-<key>/``. Images are named by their content
(:func:`image_cache_name`), so a changed image, or two datasets with equal file names, never
read each other's frames.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.pipeline import masks_on_device
from hybridgl_ros.core.types import Frame, Proposals

_LOG = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 2: files named by image content, not by file name; 3: SAM's clean-up area
#                   in camera pixels and crops' parts by piece (proposals differ from 2's)
#: Model settings that do not change a frame's numbers.
_IRRELEVANT_MODEL_FIELDS = ('torch_threads',)
#: Modules of ``hybridgl_ros/core`` that never compute a frame's numbers (the query, the
#: decision, tracking; the configuration, whose values the keys hold): editing them keeps a
#: cache. Every other module there (and any new one) is part of the code a key hashes.
QUERY_SIDE_MODULES = frozenset({
    '__init__.py', 'cancel.py', 'candidates.py', 'config.py', 'config_values.py',
    'decision.py', 'errors.py', 'follow.py', 'guidance.py', 'lookalikes.py', 'motion.py',
    'presence.py', 'scoring.py', 'text.py', 'text_features.py', 'tracking.py',
    'tracking_config.py'})
#: Installed packages whose code computes a frame.
FRAME_PACKAGES = ('torch', 'open_clip_torch', 'segment-anything')


def _file_stamps(config: HybridGLConfig,
                 names: tuple[str, ...] = ('clip_model', 'clip_weights', 'sam_model_type',
                                           'sam_checkpoint')) -> dict[str, list[int]]:
    """Size and modification time of the weight/architecture files the models load."""
    from hybridgl_ros.core import models as model_files

    paths = {name: getattr(config.models, name) for name in
             ('clip_model', 'clip_weights', 'sam_model_type', 'sam_checkpoint')}
    if model_files.uses_demo_clip(config.models):
        paths.update(clip_model=model_files.DEMO_CLIP_CONFIG,
                     clip_weights=model_files.DEMO_CLIP_WEIGHTS)
    if model_files.uses_demo_sam(config.models):
        paths.update(sam_model_type=model_files.DEMO_SAM_ARCH,
                     sam_checkpoint=model_files.DEMO_SAM_WEIGHTS)
    stamps = {}
    for name in names:
        path = Path(paths[name]).expanduser()
        if path.is_file():
            stat = path.stat()
            stamps[name] = [stat.st_size, stat.st_mtime_ns]
    return stamps


@functools.lru_cache(maxsize=None)
def code_digest(folder: Path | None = None) -> str:
    """SHA-256 (16 hex digits) of the code that computes a frame: the source of every module of
    ``hybridgl_ros/core`` (``folder``) but QUERY_SIDE_MODULES, and the versions of
    FRAME_PACKAGES. An upgrade that changes how masks or features are computed then never
    reads the frames an older version cached under the same settings."""
    from importlib import metadata

    folder = Path(folder) if folder is not None else Path(__file__).parents[1] / 'core'
    digest = hashlib.sha256()
    for path in sorted(folder.glob('*.py')):
        if path.name not in QUERY_SIDE_MODULES:
            digest.update(path.name.encode() + b'\0' + path.read_bytes() + b'\0')
    for package in FRAME_PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = ''
        digest.update(f'{package}=={version}\0'.encode())
    return digest.hexdigest()[:16]


def frame_key_material(config: HybridGLConfig) -> dict[str, Any]:
    """Everything a frame depends on: the config groups, model paths, weight file stamps and
    the code that computes it."""
    models = {k: v for k, v in dataclasses.asdict(config.models).items()
              if k not in _IRRELEVANT_MODEL_FIELDS}
    return {'format': CACHE_FORMAT, 'parity': config.parity,
            'proposals': dataclasses.asdict(config.proposals),
            'features': dataclasses.asdict(config.features),
            'gem': dataclasses.asdict(config.gem), 'models': models,
            'model_files': _file_stamps(config), 'code': code_digest()}


def proposal_key_material(config: HybridGLConfig) -> dict[str, Any]:
    """Everything the SAM proposals depend on."""
    models = {k: getattr(config.models, k)
              for k in ('sam_model_type', 'sam_checkpoint', 'device', 'precision')}
    return {'format': CACHE_FORMAT, 'parity': config.parity,
            'proposals': dataclasses.asdict(config.proposals), 'models': models,
            'model_files': _file_stamps(config, ('sam_model_type', 'sam_checkpoint')),
            'code': code_digest()}


def _hash(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def frame_key(config: HybridGLConfig) -> str:
    """A short hash of :func:`frame_key_material` (16 hex digits)."""
    return _hash(frame_key_material(config))


def image_cache_name(path: str | Path) -> str:
    """The name an image file's frame is cached under: its stem and the SHA-256 of its bytes.

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f'{path.stem}-{digest}'


class _NpzStore:
    """One compressed .npz per image in ``folder``, written atomically."""

    def __init__(self, folder: Path, material: dict[str, Any]) -> None:
        self.folder = folder
        self._material = material

    def path(self, image_name: str) -> Path:
        return self.folder / f'{image_name}.npz'

    def read(self, image_name: str, decode) -> Any:
        """``decode(arrays)`` of the stored file, or None if absent or unreadable."""
        path = self.path(image_name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return decode(data)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            _LOG.warning('cache file %s unreadable (%s); recomputing', path, exc)
            return None

    def write(self, image_name: str, arrays: dict[str, np.ndarray]) -> None:
        """Writes atomically (a crash never leaves a half-written file)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / 'config.json'
        if not meta.exists():
            meta.write_text(json.dumps(self._material, indent=1, sort_keys=True))
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as stream:
                np.savez_compressed(stream, **arrays)
            os.replace(tmp, self.path(image_name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class FrameCache:
    """Frames of one config, stored one file per image under ``root/<frame_key>``.

    Args:
        root: the cache folder (created on first store).
        config: the config the frames are computed with.
        device: where loaded tensors go (the model's device), e.g. 'cpu' or 'cuda'.
    """

    def __init__(self, root: str | Path, config: HybridGLConfig, device: Any = 'cpu') -> None:
        material = frame_key_material(config)
        self._store = _NpzStore(Path(root) / _hash(material), material)
        self.folder = self._store.folder
        self._device = device
        self._needs_gem = config.guidance.use_coherence

    def path(self, image_name: str) -> Path:
        """The cache file of an image (name it with :func:`image_cache_name`)."""
        return self._store.path(image_name)

    def load(self, image_name: str) -> Frame | None:
        """The cached frame, or None if absent, unreadable or lacking the GEM tokens this
        config needs (a frame stored by a --no-coherence run); then it is recomputed."""
        frame = self._store.read(image_name, lambda data: _frame_from_arrays(data, self._device))
        if frame is None or (self._needs_gem and frame.gem_tokens is None
                             and len(frame.proposals)):
            return None
        return frame

    def store(self, image_name: str, frame: Frame) -> None:
        """Writes a frame atomically."""
        self._store.write(image_name, _frame_to_arrays(frame))


class CachingProposer:
    """Wraps a mask proposer: the proposals of the image named ``image_name`` are read from, or
    written to, a cache keyed by the proposal and SAM settings only.

    Args:
        inner: the proposer to wrap (``propose(image_rgb) -> Proposals``).
        root: the cache folder.
        config: the run's config.
    """

    def __init__(self, inner: Any, root: str | Path, config: HybridGLConfig) -> None:
        material = proposal_key_material(config)
        self._store = _NpzStore(Path(root) / f'proposals-{_hash(material)}', material)
        self.inner = inner
        self.image_name: str | None = None
        self.hits = 0

    @contextlib.contextmanager
    def naming(self, image_name: str) -> Iterator[None]:
        """Within the block, proposals are cached under ``image_name``."""
        self.image_name = image_name
        try:
            yield
        finally:
            self.image_name = None

    @property
    def takes_hole_area(self) -> bool:
        return getattr(self.inner, 'takes_hole_area', False)

    def propose(self, image_rgb: np.ndarray, **told) -> Proposals:
        """Cached proposals of the current image if stored, else the inner proposer's (what
        the pipeline tells of a downscaled frame, ``min_hole_area``, passed on: it follows
        from the image's size and the settings the cache key holds)."""
        if self.image_name is None:
            return self.inner.propose(image_rgb, **told)
        cached = self._store.read(self.image_name, _proposals_from_arrays)
        if cached is not None and cached.masks.shape[1:] == image_rgb.shape[:2]:
            self.hits += 1
            return cached
        proposals = self.inner.propose(image_rgb, **told)
        self._store.write(self.image_name, _proposals_to_arrays(proposals))
        return proposals


def _to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor (any device) or array as numpy; bfloat16 becomes float32."""
    if hasattr(tensor, 'detach'):
        import torch

        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(tensor)


def _proposals_to_arrays(proposals: Proposals) -> dict[str, np.ndarray]:
    masks = proposals.masks  # (N, H, W) bool, N may be 0
    count, height, width = masks.shape
    return {'mask_shape': np.asarray(masks.shape, np.int64),
            'masks_packed': np.packbits(masks.reshape(count, height * width), axis=1),
            'boxes_xywh': np.asarray(proposals.boxes_xywh, np.int64),
            'scores': np.asarray(proposals.scores, np.float32)}


def _proposals_from_arrays(data: Any) -> Proposals:
    count, height, width = (int(v) for v in data['mask_shape'])
    bits = np.unpackbits(data['masks_packed'], axis=1, count=height * width)
    masks = bits.reshape(count, height, width).astype(bool)
    return Proposals(masks, data['boxes_xywh'], data['scores'])


def _frame_to_arrays(frame: Frame) -> dict[str, np.ndarray]:
    arrays = {
        **_proposals_to_arrays(frame.proposals),
        'image_size': np.asarray(frame.image_size, np.int64),
        'mask_features': _to_numpy(frame.mask_features),
        'gem_grid': np.asarray(frame.gem_grid, np.int64),
        'timings_ms': np.asarray(json.dumps(frame.timings_ms))}
    if frame.gem_tokens is not None:
        arrays['gem_tokens'] = _to_numpy(frame.gem_tokens)
    return arrays


def _frame_from_arrays(data: Any, device: Any) -> Frame:
    import torch

    proposals = _proposals_from_arrays(data)
    gem = torch.from_numpy(data['gem_tokens']).to(device) if 'gem_tokens' in data else None
    return Frame(
        image_size=tuple(int(v) for v in data['image_size']), proposals=proposals,
        mask_features=torch.from_numpy(data['mask_features']).to(device),
        gem_tokens=gem, gem_grid=tuple(int(v) for v in data['gem_grid']),
        timings_ms=json.loads(str(data['timings_ms'])),
        mask_tensor=masks_on_device(proposals.masks, device))
