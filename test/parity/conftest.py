"""The parity run: the shared random ViT-B/16, the fixture's cases, both modes, computed once.

One torch thread, CPU, fp32, as the reference dump was made (its README).
"""
import sys
from pathlib import Path

import pytest

# The helpers module sits beside this file; test/ alone is on pytest's pythonpath.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import parity_support as ps  # noqa: E402


class ParityRun:
    """Lazily runs each case once (frame + every query in both modes) and keeps the result."""

    def __init__(self):
        import torch

        from hybridgl_ros.core.config import HybridGLConfig
        from hybridgl_ros.core.models import build_clip
        from hybridgl_ros.core.pipeline import HybridGL
        from hybridgl_ros.core.text import SpacyParser

        torch.set_num_threads(1)
        self.directory = ps.fixture_dir()
        self.cases = ps.load_module('cases', self.directory)
        self.weights = ps.load_module('weights', self.directory)
        self.dump = ps.load_dump(self.directory)
        state = self.weights.make_state_dict(0)
        self.weights_digest = self.weights.tensor_dict_digest(state)
        model, _ = build_clip('ViT-B-16', quick_gelu=True)
        model.load_state_dict(state)
        model.eval()
        self.proposer = ps.CaseProposer()
        self.configs = {
            'reference': HybridGLConfig.from_flat({
                'parity': 'reference', 'text.spacy_model': ps.SPACY_MODEL}),
            'default': HybridGLConfig.from_flat({
                'models.precision': 'fp32', 'text.spacy_model': ps.SPACY_MODEL}),
            # the default mode with the spec's q and the spec's reading of the text
            # (guidance.anchor_by_words, text.everyday_phrasing and
            # guidance.direction_from_relation off): what a query is compared on where the
            # default mode's own departs (ps.SPEC_Q)
            ps.SPEC_Q: HybridGLConfig.from_flat({
                'models.precision': 'fp32', 'text.spacy_model': ps.SPACY_MODEL,
                'guidance.anchor_by_words': False, 'text.everyday_phrasing': False,
                'guidance.direction_from_relation': False})}
        self.segmenters = {
            mode: HybridGL(config, clip_model=model, proposer=self.proposer,
                           parser=SpacyParser.from_config(config))
            for mode, config in self.configs.items()}
        self._runs = {}
        self._built = {}

    def case(self, case_id):
        """The case as ``cases.build_cases`` makes it."""
        if case_id not in self._built:
            self._built[case_id] = self.cases.build_cases([case_id])[0]
        return self._built[case_id]

    def run(self, case_id) -> ps.CaseRun:
        """The project's values on a case (computed on first use)."""
        if case_id not in self._runs:
            self._runs[case_id] = ps.run_case(self.case(case_id), self.segmenters,
                                              self.proposer)
        return self._runs[case_id]


@pytest.fixture(scope='session')
def parity():
    return ParityRun()


def pytest_terminal_summary(terminalreporter):
    """Prints how close the project came to the reference, quantity by quantity."""
    if ps.MAX_DIFFS:
        terminalreporter.section('parity with the authors\' released code')
        for line in ps.agreement_lines():
            terminalreporter.write_line(line)
