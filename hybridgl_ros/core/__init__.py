"""The HybridGL method (no ROS here): ``HybridGL(config).segment(image_rgb, text)``.

Heavy modules (torch, open_clip, segment_anything, spaCy) load lazily on first use.
"""
from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import (
    ConfigError, HybridGLError, InvalidInputError, ModelLoadError, ResourceExhaustedError)
from hybridgl_ros.core.types import Frame, ParsedExpression, Proposals, Segmentation

__all__ = [
    'ConfigError', 'Frame', 'HybridGL', 'HybridGLConfig', 'HybridGLError', 'InvalidInputError',
    'ModelLoadError', 'ParsedExpression', 'Proposals', 'ResourceExhaustedError', 'Segmentation']


def __getattr__(name):
    if name == 'HybridGL':
        from hybridgl_ros.core.pipeline import HybridGL
        return HybridGL
    raise AttributeError(name)
