"""Demo data and models: synthetic referring scenes and the tiny self-trained CLIP and SAM.

Nothing here is imported by the core; ``hybridgl make-scenes`` and ``hybridgl train-demo-models``
(see :mod:`hybridgl_ros.demo.cli`) are the entry points.
"""
