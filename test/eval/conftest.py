"""Fixtures of the evaluation tests (the data helpers are in ``eval_data.py``)."""
import sys
from pathlib import Path

import pytest

# The helpers module sits beside this file; test/ alone is on pytest's pythonpath.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_data import StandInModel, write_refcoco  # noqa: E402


@pytest.fixture
def refcoco_root(tmp_path):
    """A RefCOCO-layout data root with six images (val: four of them)."""
    root = tmp_path / 'data'
    write_refcoco(root)
    return root


@pytest.fixture
def stand_in():
    """A factory: ``factory(config) -> StandInModel``; the models made are in ``.made``."""
    class Factory:
        def __init__(self):
            self.made = []
            self.interrupt_at = None
            self.first_prepare_error = None

        def __call__(self, config):
            model = StandInModel(config, self.interrupt_at, self.first_prepare_error)
            self.made.append(model)
            return model

    return Factory()
