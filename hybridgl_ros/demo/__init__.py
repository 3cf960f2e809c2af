"""Demo data and models: synthetic referring scenes and the tiny self-trained CLIP and SAM.

Nothing here is imported by the core; ``hybridgl make-scenes``, ``hybridgl train-demo-models``
(see :mod:`hybridgl_ros.demo.cli`) and ``hybridgl demo`` are the entry points.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: Settings of the demo scenes (vertical position ramps on), in the package's config/ folder.
DEMO_CONFIG_FILE = 'demo_scenes.yaml'


def package_config_file(name: str) -> Path:
    """A file of the package's ``config/`` folder: the installed copy (``share/hybridgl_ros``)
    or the source tree's. Raises FileNotFoundError naming both places."""
    candidates = (Path(sys.prefix) / 'share/hybridgl_ros/config' / name,
                  Path(__file__).resolve().parents[2] / 'config' / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'{name} is neither in {candidates[0].parent} nor in '
                            f'{candidates[1].parent}: reinstall the package')


def demo_config():
    """The HybridGLConfig of the demo scenes: the defaults and ``config/demo_scenes.yaml``."""
    from hybridgl_ros.core.config import HybridGLConfig

    return HybridGLConfig.from_yaml(package_config_file(DEMO_CONFIG_FILE))
