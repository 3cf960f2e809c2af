"""hybridgl_ros: referring-expression segmentation (HybridGL, CVPR 2025) for ROS 2.

The method lives in :mod:`hybridgl_ros.core` (no ROS imports); the ROS node in
:mod:`hybridgl_ros.ros`. The generated interface modules (``hybridgl_ros.msg``,
``hybridgl_ros.srv``) exist only in the *installed* copy of this package; extending
``__path__`` lets a source checkout that shadows it (``python -m pytest`` from the repo root)
still import them. Keep this file light: importing ``hybridgl_ros.msg`` executes it.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = '0.1.0'
