"""Shared fixtures: tiny randomly initialised models with the real open_clip code."""
import json

import numpy as np
import pytest

from tiny_models import TINY_CLIP_CONFIG

pytest_plugins = ['hang_guard']  # a hung test ends its process with every stack (see there)


def pytest_configure(config):
    """One torch thread: the tests' models are small, and on the 2-core CI machine other
    processes (ROS nodes) run beside the test process; extra threads cost more than they give."""
    import torch

    torch.set_num_threads(1)


def pytest_report_header(config):
    """Says when the installed copy of hybridgl_ros differs from the source tree. The tests
    import the tree (``pythonpath`` in pyproject.toml), but console scripts and the nodes the
    ROS tests start as processes run the installed copy: ``scripts/test.sh`` reinstalls it
    first (``scripts/setup.sh``); a bare ``pytest`` after an edit does not."""
    import sysconfig
    from pathlib import Path

    tree = Path(__file__).resolve().parents[1] / 'hybridgl_ros'
    installed = Path(sysconfig.get_paths()['purelib']) / 'hybridgl_ros'
    if not installed.is_dir():
        return 'hybridgl_ros: not installed in this environment (run bash scripts/setup.sh)'
    differ = sorted(
        str(path.relative_to(tree)) for path in tree.rglob('*.py')
        if not (installed / path.relative_to(tree)).is_file()
        or (installed / path.relative_to(tree)).read_bytes() != path.read_bytes())
    if differ:
        return (f'hybridgl_ros: the installed copy differs from the source tree in {len(differ)} '
                f'file(s) ({", ".join(differ[:3])}{", ..." if len(differ) > 3 else ""}); '
                'processes the tests start run the installed one: run bash scripts/setup.sh')
    return None


def pytest_collection_modifyitems(config, items):
    """Without a CUDA device the ``cuda`` tests are deselected, not skipped: they cannot run
    here, and ``scripts/gpu_check.sh`` runs them (``-m cuda``) on a GPU machine."""
    import torch

    if torch.cuda.is_available() or 'cuda' in (config.getoption('markexpr') or ''):
        return
    cuda = [item for item in items if item.get_closest_marker('cuda')]
    if cuda:
        config.hook.pytest_deselected(items=cuda)
        items[:] = [item for item in items if not item.get_closest_marker('cuda')]


@pytest.fixture(scope='session')
def tiny_clip_config_path(tmp_path_factory):
    """Path of the tiny model's open_clip config JSON."""
    path = tmp_path_factory.mktemp('tiny_clip') / 'tiny_clip.json'
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    return path


@pytest.fixture(scope='session')
def tiny_clip():
    """A randomly initialised open_clip CLIP (eval mode, fp32, CPU), seeded."""
    import torch
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP_CONFIG)
    return model.eval()


@pytest.fixture(scope='session')
def spacy_parser():
    """The real spaCy parser (default mode), loaded once per test session."""
    from hybridgl_ros.core.text import SpacyParser

    parser = SpacyParser()
    parser.parse('load the pipeline')
    return parser


@pytest.fixture
def scene_rgb():
    """(96, 128, 3) uint8: a red square left, a blue disc right, on a grey gradient."""
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([np.full((h, w), 90 + yy // 4)] * 3, axis=-1).astype(np.uint8)
    image[30:60, 15:45] = (220, 30, 30)
    image[(yy - 48) ** 2 + (xx - 95) ** 2 < 15 ** 2] = (30, 40, 220)
    return image
