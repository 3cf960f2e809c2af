"""Evaluation on the paper's benchmarks (RefCOCO, RefCOCO+, RefCOCOg, PhraseCut), spec §11.

``hybridgl eval`` (see :mod:`hybridgl_ros.eval.cli`) runs :func:`runner.evaluate`; the
readers are in :mod:`.datasets`, the metrics in :mod:`.metrics`, the frame cache in
:mod:`.cache`. Nothing here imports ROS.
"""
