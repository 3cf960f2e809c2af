"""Reduced precision on the parity fixture: the answers of two runs, and how far they agree.

The fixture (synthetic cases with fixed proposals, the shared random ViT-B/16) is found and
loaded by ``test/parity/parity_support.py``; this module adds what the precision checks need
(tests and ``scripts/precision_agreement.py``).
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / 'parity'))

import parity_support as ps  # noqa: E402


@functools.lru_cache(maxsize=1)
def cases() -> list:
    """Every case of the fixture's ``cases.build_cases()``."""
    return ps.load_module('cases', ps.fixture_dir()).build_cases()


def parity_clip(device='cpu'):
    """The shared seeded random ViT-B/16 (OpenAI layout, QuickGELU) as an open_clip CLIP."""
    from hybridgl_ros.core.models import build_clip

    weights = ps.load_module('weights', ps.fixture_dir())
    state = weights.make_state_dict(0)
    if weights.tensor_dict_digest(state) != weights.DIGEST_SEED0:
        raise RuntimeError('the parity weights do not match their digest')
    model, _ = build_clip('ViT-B-16', quick_gelu=True)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def parity_segmenter(precision: str = 'fp32', device: str = 'cpu', clip=None):
    """HybridGL (default mode) on the parity CLIP, the fixture's proposals and spaCy pipeline.

    Returns:
        (segmenter, proposer): set ``proposer.proposals`` before ``prepare``.
    """
    from hybridgl_ros.core.config import HybridGLConfig
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.core.text import SpacyParser

    config = HybridGLConfig.from_flat({'models.device': device, 'models.precision': precision,
                                       'text.spacy_model': ps.SPACY_MODEL})
    proposer = ps.CaseProposer()
    segmenter = HybridGL(config, clip_model=clip or parity_clip(device), proposer=proposer,
                         parser=SpacyParser(ps.SPACY_MODEL))
    return segmenter, proposer


def parity_answers(segmenter, proposer, case_ids=None) -> dict:
    """(case id, sentence) -> Segmentation of every non-empty parity query."""
    answers = {}
    for case in cases():
        if case_ids and case.case_id not in case_ids:
            continue
        proposer.proposals = ps.case_proposals(case)
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
