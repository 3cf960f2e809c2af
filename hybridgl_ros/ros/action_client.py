"""An rclpy ActionClient that may be created on a node an executor is already spinning."""
from __future__ import annotations

import threading

from rclpy.action import ActionClient


class SpinSafeActionClient(ActionClient):
    """rclpy's ``ActionClient`` (the 2026 PyPI wheels) adds itself to its node's waitables
    before it creates the lock that its wait-set methods take; an executor spinning the node in
    another thread can reach ``get_num_entities`` in between and its spin thread dies with
    ``AttributeError: 'ActionClient' object has no attribute '_lock'`` (ros2/rclpy#1589; seen
    here in a test: every later callback of that executor was lost). This one has the lock
    before it is visible; rclpy replaces it with its own at the end of construction, when no
    goal can be in flight yet."""

    def __init__(self, *args, **kwargs) -> None:
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)
