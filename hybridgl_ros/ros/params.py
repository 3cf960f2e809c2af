"""ROS parameters of ``hybridgl_node``: every HybridGLConfig field one to one, plus its own.

Method parameters keep the config's grouped names (``proposals.points_per_side``,
``models.sam_checkpoint``, ...); tuples become double arrays. Their descriptions are the
config's field docstrings, so they are written once, in :mod:`hybridgl_ros.core.config`.
Node parameters (QoS, depth handling, publishing) are the fields of :class:`NodeParams`.
Which of them apply live and which are read at configure: :mod:`hybridgl_ros.ros.live_params`.

``config/hybridgl.yaml`` holds every default; regenerate it after a config change with
``python -m hybridgl_ros.ros.params > config/hybridgl.yaml`` (a test checks that it agrees).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
from dataclasses import dataclass, fields
from typing import Any

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.config_values import check_choice, check_finite, check_range
from hybridgl_ros.core.errors import ConfigError

NODE_NAME = 'hybridgl_node'
RELIABILITIES = ('best_effort', 'reliable')

#: Descriptions of config fields that have no docstring in hybridgl_ros/core/config.py (a field
#: docstring there, when added, takes precedence).
_FALLBACK_DESCRIPTIONS = {
    'parity': "default | reference: 'reference' reproduces the authors' released code (spec §12)",
    'proposals.points_per_batch': 'SAM prompts decoded together (memory, not the result)',
    'proposals.box_nms_thresh': 'Box IoU above which NMS drops duplicate SAM masks',
    'features.blur_kernel_px': 'Gaussian blur kernel side of the global mask image [px]',
    'features.blur_sigma_px': 'Gaussian blur sigma of the global mask image [px]',
    'features.image_std': 'Per-channel std (RGB, [0,1] scale) normalising the two mask images',
    'gem.image_mean': "Per-channel mean (RGB, [0,1] scale) of GEM's input (CLIP's)",
    'gem.image_std': "Per-channel std (RGB, [0,1] scale) of GEM's input (CLIP's)",
    'gem.prompt': 'Text template of the GEM coherence map; {} = the head noun phrase',
    'text.other_prompt': 'Text template of the other noun phrases; {} = the phrase',
    'guidance.beta_big': 'β of Eq. 8 when the relation is big',
    'guidance.beta_small': 'β of Eq. 8 when the relation is small',
    'guidance.use_relation': 'Use the relation guidance (spec §7); false = ablation',
    'guidance.use_position': 'Use the position ramps (spec §9); false = ablation',
    'guidance.use_coherence': 'Use the GEM coherence map (spec §8); false = ablation',
    'models.device': 'auto | cpu | cuda (auto = cuda when available)',
}


@dataclass(frozen=True)
class NodeParams:
    """Parameters of the node itself (not of the method)."""

    autostart: bool = True
    """Configure (load the models) and activate at start-up; false = wait for lifecycle calls."""
    image_reliability: str = 'best_effort'
    """QoS reliability of the image, depth and camera_info subscriptions: best_effort|reliable."""
    image_depth: int = 1
    """QoS history depth of the image, depth and camera_info subscriptions."""
    max_image_age_s: float = 2.0
    """Refuse a query on the latest frame if it arrived longer ago than this [s]; 0 = no limit."""
    max_stamp_age_s: float = 0.0
    """Refuse the latest frame if stamped longer ago (or further ahead) than this by the node
    clock [s]; 0 = off."""
    max_queued_requests: int = 10
    """Calls that may wait behind the running one; more are answered at once 'busy' [calls]."""
    max_text_chars: int = 1000
    """Refuse longer expressions [characters]; longer-than-CLIP token lists are truncated."""
    prepare_on_arrival: bool = False
    """Prepare every new frame ahead of requests (SAM + image features), not on the first query."""
    publish_overlay: bool = True
    """Publish ~/overlay (rgb8 picture of the result) after each query."""
    publish_markers: bool = True
    """Publish ~/markers (centroid sphere, 3D box, text label) after each 3D result."""
    use_depth: bool = True
    """Subscribe to depth + camera_info and compute a 3D centroid when they pair with the frame."""
    depth_units_to_m: float = 0.001
    """Metres per unit of a 16UC1/mono16 depth image (0.001 = millimetres)."""
    depth_min_valid_px: int = 10
    """Fewest valid depth pixels under the mask for a 3D centroid."""
    min_depth_m: float = 0.01
    """Depths below this are no measurement (noise, or a depth in other units or byte order)
    [m]; 0 = any positive depth."""
    max_depth_m: float = 100.0
    """Depths beyond this are no measurement (a corrupt value, not a distance); lower it to your
    camera's range to ignore its far readings [m]; 0 = no limit."""
    sync_slop_s: float = 0.05
    """Depth and camera_info pair with the image when their stamps differ by at most this [s]."""
    require_registered_depth: bool = True
    """3D only from depth + camera_info in the colour image's frame_id; false = trust remaps."""
    track_queue_size: int = 1
    """~/track goals that may wait behind the running one; more are refused (reason REFUSED)."""
    track_client_timeout_s: float = 10.0
    """End a ~/track goal (FAILED) when no action client has listened to its feedback for
    this long [s]: its client is gone (a killed one never cancels; DDS notices it when its
    lease runs out, about 20 s with Fast DDS); 0 = never."""


def node_param_defaults() -> dict[str, Any]:
    """Node parameter name -> default."""
    return {f.name: f.default for f in fields(NodeParams)}


def config_param_defaults(config: HybridGLConfig | None = None) -> dict[str, Any]:
    """Method parameter name -> value as a ROS parameter (tuples as lists of floats)."""
    flat = (config or HybridGLConfig()).to_flat()
    return {name: [float(v) for v in value] if isinstance(value, tuple) else value
            for name, value in flat.items()}


def all_param_defaults() -> dict[str, Any]:
    """Every parameter of the node -> default (method first, then node)."""
    return {**config_param_defaults(), **node_param_defaults()}


def declare_parameters(node) -> None:
    """Declares every method and node parameter on ``node`` with type and description."""
    from rcl_interfaces.msg import ParameterDescriptor

    descriptions = parameter_descriptions()
    for name, default in all_param_defaults().items():
        node.declare_parameter(name, default, ParameterDescriptor(
            name=name, type=_parameter_type(default), description=descriptions[name]))


def config_from_node(node) -> HybridGLConfig:
    """The method config from the node's current parameters (ConfigError if one is bad)."""
    values = {name: node.get_parameter(name).value for name in config_param_defaults()}
    return HybridGLConfig.from_flat(values)


def node_params_from_node(node) -> NodeParams:
    """The node's own parameters (ConfigError if one is out of range)."""
    return node_params_from_values({name: node.get_parameter(name).value
                                    for name in node_param_defaults()})


def node_params_from_values(values: dict[str, Any]) -> NodeParams:
    """NodeParams from parameter values (extra names ignored; ConfigError if one is bad)."""
    params = NodeParams(**{name: values[name] for name in node_param_defaults()})
    check_choice('image_reliability', params.image_reliability, RELIABILITIES)
    for name in ('image_depth', 'max_text_chars', 'depth_min_valid_px'):
        check_range(name, getattr(params, name), 1)
    for name in ('max_image_age_s', 'max_stamp_age_s', 'max_queued_requests',
                 'depth_units_to_m', 'sync_slop_s', 'track_queue_size', 'track_client_timeout_s',
                 'min_depth_m', 'max_depth_m'):
        check_range(name, getattr(params, name), 0)
    check_finite({name: getattr(params, name)
                  for name in ('depth_units_to_m', 'sync_slop_s', 'min_depth_m', 'max_depth_m')})
    if params.max_depth_m > 0 and params.min_depth_m >= params.max_depth_m:
        raise ConfigError(f'min_depth_m ({params.min_depth_m}) must be below max_depth_m '
                          f'({params.max_depth_m})')
    return params


def _parameter_type(default: Any) -> int:
    from rcl_interfaces.msg import ParameterType

    if isinstance(default, bool):
        return ParameterType.PARAMETER_BOOL
    if isinstance(default, int):
        return ParameterType.PARAMETER_INTEGER
    if isinstance(default, float):
        return ParameterType.PARAMETER_DOUBLE
    if isinstance(default, list):
        return ParameterType.PARAMETER_DOUBLE_ARRAY
    return ParameterType.PARAMETER_STRING


@functools.lru_cache(maxsize=1)
def parameter_descriptions() -> dict[str, str]:
    """Parameter name -> one-line description, from the dataclasses' field docstrings."""
    docs = {}
    defaults = HybridGLConfig()
    for group in fields(HybridGLConfig):
        cls = type(getattr(defaults, group.name))
        if dataclasses.is_dataclass(cls):
            docs.update({f'{group.name}.{name}': doc for name, doc in _field_docs(cls).items()})
        else:
            docs[group.name] = _field_docs(HybridGLConfig).get(group.name, '')
    out = {}
    for name in config_param_defaults():
        group = name.rpartition('.')[0]
        out[name] = (docs.get(name) or _FALLBACK_DESCRIPTIONS.get(name)
                     or f'{group or "HybridGL"} setting {name} (see hybridgl_ros/core/config.py)')
    out.update(_field_docs(NodeParams))
    return out


def _field_docs(cls: type) -> dict[str, str]:
    """Field name -> its docstring's first line ('' if none), read from the class source."""
    tree = ast.parse(inspect.getsource(cls)).body[0]
    docs: dict[str, str] = {}
    previous = None
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            previous = stmt.target.id
            docs[previous] = ''
        elif (previous and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
              and isinstance(stmt.value.value, str)):
            docs[previous] = ' '.join(stmt.value.value.split())
            previous = None
        else:
            previous = None
    return docs


def render_yaml() -> str:
    """``config/hybridgl.yaml``: every parameter's default with its description as a comment."""
    descriptions = parameter_descriptions()
    lines = [
        '# Every parameter of hybridgl_node with its default (generated by',
        '#   python -m hybridgl_ros.ros.params > config/hybridgl.yaml',
        '# from hybridgl_ros/core/config.py and hybridgl_ros/ros/params.py; a test checks they',
        '# agree). Use with: --ros-args --params-file config/hybridgl.yaml, or the launch file.',
        '# HybridGLConfig.from_yaml reads this file too (it ignores the node-only parameters).',
        "# The key '/**' applies it to the node under any namespace and name (remapped or not).",
        '/**:', '  ros__parameters:']
    for title, values in (('the method (HybridGLConfig)', config_param_defaults()),
                          ('the node (NodeParams)', node_param_defaults())):
        lines.append(f'    # ---- {title}')
        group_open = None
        for name, value in values.items():
            group, _, key = name.rpartition('.')
            indent = '      ' if group else '    '
            if group and group != group_open:
                lines.append(f'    {group}:')
            group_open = group
            lines.append(f'{indent}# {descriptions[name]}')
            lines.append(f'{indent}{key}: {_yaml_value(value)}')
    return '\n'.join(lines) + '\n'


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return '[' + ', '.join(repr(float(v)) for v in value) + ']'
    if isinstance(value, str):
        return json.dumps(value) if value else "''"
    return str(value)


def parameter_table_markdown() -> str:
    """A Markdown table of every parameter: name, type, default, description."""
    rows = ['| Parameter | Type | Default | Description |', '| --- | --- | --- | --- |']
    descriptions = parameter_descriptions()
    for name, value in all_param_defaults().items():
        kind = ('bool' if isinstance(value, bool) else 'int' if isinstance(value, int) else
                'double' if isinstance(value, float) else
                'double[]' if isinstance(value, list) else 'string')
        rows.append(f'| `{name}` | {kind} | `{_yaml_value(value)}` | '
                    f'{descriptions[name].replace("|", "/")} |')
    return '\n'.join(rows) + '\n'


def main() -> None:
    """Writes config/hybridgl.yaml to stdout (``--table``: the README's Markdown table)."""
    import sys

    sys.stdout.write(parameter_table_markdown() if '--table' in sys.argv else render_yaml())


if __name__ == '__main__':
    main()
