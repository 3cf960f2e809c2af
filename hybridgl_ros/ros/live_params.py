"""Which parameters apply while the node runs, and the check of every new value.

``ros2 param set`` (the node's ``set_parameters`` service) goes through :func:`review`:

* **Live** (:data:`LIVE`): applied to the next call. They steer answering and publishing, not
  the models or the subscriptions.
* **Read at configure**: everything else (the method's parameters: the models are built from
  them; ``use_depth``, ``image_reliability``, ``image_depth``: the subscriptions). While the node
  is configured a new value is refused with how to apply it; while it is unconfigured the value
  is accepted and read by the next configure.
* ``autostart`` is read once, at start-up: refused.

Every value is checked first, as configure would check it (choices such as ``models.device``,
ranges), and refused with the reason; so a value that ``ros2 param set`` accepted is one the
node uses (now, or at the next configure).
"""
from __future__ import annotations

from typing import Any

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.ros.params import (
    NodeParams, config_param_defaults, node_param_defaults, node_params_from_values)

LIVE = frozenset({
    'max_image_age_s', 'max_stamp_age_s', 'max_queued_requests', 'max_text_chars',
    'prepare_on_arrival', 'publish_overlay', 'publish_markers', 'depth_units_to_m',
    'depth_min_valid_px', 'sync_slop_s', 'require_registered_depth', 'track_queue_size',
    'track_client_timeout_s', 'min_depth_m', 'max_depth_m'})
START_ONLY = frozenset({'autostart'})
HOW_TO_RECONFIGURE = ('run the lifecycle transitions deactivate and cleanup, set it, then '
                      'configure and activate')


def review(changes: dict[str, Any], current: dict[str, Any], configured: bool
           ) -> tuple[str, NodeParams | None]:
    """Decides on a set of parameter changes (all or none are accepted, as rcl asks).

    Args:
        changes: parameter name -> new value.
        current: every parameter's value now (name -> value).
        configured: whether the node holds its models (configured, inactive or active).

    Returns:
        ('', the node parameters with the changes) if accepted, else (the reason, None).
    """
    values = {**current, **changes}
    try:
        HybridGLConfig.from_flat({name: values[name] for name in config_param_defaults()})
        settings = node_params_from_values(values)
    except ConfigError as exc:
        return str(exc), None
    for name in changes:
        reason = _when_refused(name, configured)
        if reason:
            return reason, None
    return '', settings


def _when_refused(name: str, configured: bool) -> str:
    if name in START_ONLY:
        return f'{name} is read only at start-up: pass it to the node when it starts'
    if name in LIVE or not configured:
        return ''
    if name in node_param_defaults() or name in config_param_defaults():
        return f'{name} is read at configure: {HOW_TO_RECONFIGURE}'
    return ''  # a parameter of rclpy's own (use_sim_time, ...)
