"""ROS parameters mirror HybridGLConfig one to one; config/hybridgl.yaml holds every default."""
import uuid
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.msg import ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.ros import params

YAML_PATH = Path(__file__).resolve().parents[2] / 'config/hybridgl.yaml'


def _flatten(mapping, prefix=''):
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def _node(context, overrides=(), cli_args=None):
    node = Node(params.NODE_NAME, context=context, parameter_overrides=list(overrides),
                cli_args=cli_args)
    params.declare_parameters(node)
    return node


def test_yaml_file_holds_every_default():
    data = yaml.safe_load(YAML_PATH.read_text())
    assert _flatten(data['/**']['ros__parameters']) == params.all_param_defaults()


def test_yaml_file_is_what_the_generator_writes():
    assert YAML_PATH.read_text() == params.render_yaml(), (
        'regenerate: python -m hybridgl_ros.ros.params > config/hybridgl.yaml')


def test_config_from_yaml_file_equals_dataclass_defaults():
    assert HybridGLConfig.from_yaml(YAML_PATH) == HybridGLConfig()


def test_every_config_field_is_a_parameter():
    assert set(HybridGLConfig().to_flat()) <= set(params.all_param_defaults())


def test_node_and_config_parameter_names_do_not_collide():
    assert not set(params.node_param_defaults()) & set(params.config_param_defaults())


def test_declared_parameters_equal_defaults_and_are_described(ros_context):
    node = _node(ros_context)
    for name, default in params.all_param_defaults().items():
        assert node.get_parameter(name).value == default, name
        descriptor = node.describe_parameter(name)
        assert len(descriptor.description) > 10, name
    node.destroy_node()


def test_tuples_are_double_arrays(ros_context):
    node = _node(ros_context)
    descriptor = node.describe_parameter('features.image_mean')
    assert descriptor.type == ParameterType.PARAMETER_DOUBLE_ARRAY
    node.destroy_node()


def test_parameters_map_to_config(ros_context):
    node = _node(ros_context, [
        Parameter('proposals.points_per_side', value=16),
        Parameter('features.image_mean', value=[0.1, 0.2, 0.3]),
        Parameter('guidance.use_coherence', value=False),
        Parameter('models.sam_checkpoint', value='/models/sam_vit_b.pth'),
        Parameter('parity', value='reference')])
    config = params.config_from_node(node)
    assert config.proposals.points_per_side == 16
    assert config.features.image_mean == (0.1, 0.2, 0.3)
    assert config.guidance.use_coherence is False
    assert config.models.sam_checkpoint == '/models/sam_vit_b.pth'
    assert config.reference
    node.destroy_node()


def test_default_parameters_give_the_default_config(ros_context):
    node = _node(ros_context)
    assert params.config_from_node(node) == HybridGLConfig()
    node.destroy_node()


def test_params_file_loads_through_rcl(ros_context):
    node = _node(ros_context, cli_args=['--ros-args', '--params-file', str(YAML_PATH)])
    assert params.config_from_node(node) == HybridGLConfig()
    assert params.node_params_from_node(node) == params.NodeParams()
    node.destroy_node()


def test_demo_scenes_params_file_loads_through_rcl(ros_context):
    """config/demo_scenes.yaml, for ros2 launch ... config_file:=, gives the demo's config."""
    from hybridgl_ros.demo import demo_config

    path = YAML_PATH.parent / 'demo_scenes.yaml'
    node = _node(ros_context, cli_args=['--ros-args', '--params-file', str(path)])
    assert params.config_from_node(node) == demo_config()
    assert params.config_from_node(node).guidance.vertical_ramps
    node.destroy_node()


def test_bad_method_value_is_a_config_error(ros_context):
    node = _node(ros_context, [Parameter('features.mode', value='XYZ')])
    with pytest.raises(ConfigError, match='features.mode'):
        params.config_from_node(node)
    node.destroy_node()


def test_bad_node_value_is_a_config_error(ros_context):
    node = _node(ros_context, [Parameter('image_reliability', value='sometimes')])
    with pytest.raises(ConfigError, match='image_reliability'):
        params.node_params_from_node(node)
    node.destroy_node()


def test_a_depth_range_that_holds_nothing_is_a_config_error():
    values = params.node_param_defaults()
    with pytest.raises(ConfigError, match=r'min_depth_m \(5.0\) must be below max_depth_m'):
        params.node_params_from_values({**values, 'min_depth_m': 5.0, 'max_depth_m': 5.0})
    assert params.node_params_from_values({**values, 'min_depth_m': 5.0, 'max_depth_m': 0.0})


def test_markdown_table_lists_every_parameter():
    table = params.parameter_table_markdown()
    for name in params.all_param_defaults():
        assert f'| `{name}` |' in table


def _shipped_file_with(tmp_path, **node_values):
    """config/hybridgl.yaml as shipped (key '/**') with some node parameters changed."""
    data = yaml.safe_load(YAML_PATH.read_text())
    data['/**']['ros__parameters'].update(node_values)
    data['/**']['ros__parameters']['proposals']['points_per_side'] = 16
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def test_params_file_applies_under_a_namespace_and_a_remapped_name(ros_context, tmp_path):
    path = _shipped_file_with(tmp_path, max_text_chars=12)
    node = _node(ros_context, cli_args=['--ros-args', '-r', '__ns:=/robot1/arm', '-r',
                                        '__node:=perception', '--params-file', str(path)])
    assert node.get_fully_qualified_name() == '/robot1/arm/perception'
    assert params.config_from_node(node).proposals.points_per_side == 16
    assert params.node_params_from_node(node).max_text_chars == 12
    node.destroy_node()


def test_a_namespaced_node_process_reads_the_params_file(ros_context, ros_env, tmp_path):
    """The node as its own process, as ``ros2 run ... --ros-args -r __ns:=/robot1 --params-file``
    starts it; its parameters read back over DDS and used by its service."""
    from rcl_interfaces.srv import GetParameters

    from hybridgl_ros.srv import SegmentByText
    from ros_helpers import Spinner, call, start_small_node, stop_process, wait_until_active

    namespace = f'/robot{uuid.uuid4().hex[:6]}'
    process = start_small_node(ros_env, tmp_path / 'node.log', namespace, ros_args=[
        '--params-file', str(_shipped_file_with(tmp_path, max_text_chars=12))])
    client_node = Node('client', context=ros_context, namespace=namespace)
    spinner = Spinner(ros_context, client_node)
    try:
        getter = client_node.create_client(GetParameters,
                                           f'{namespace}/hybridgl_node/get_parameters')
        segment = client_node.create_client(SegmentByText, f'{namespace}/hybridgl_node/segment')
        assert segment.wait_for_service(timeout_sec=20.0) and getter.wait_for_service(5.0)
        wait_until_active(client_node, f'{namespace}/hybridgl_node')
        response = call(getter, GetParameters.Request(
            names=['max_text_chars', 'proposals.points_per_side']))
        assert [v.integer_value for v in response.values] == [12, 16]
        answer = call(segment, SegmentByText.Request(text='the red square'))
        assert not answer.success and 'at most 12 are accepted' in answer.message
    finally:
        spinner.stop()
        client_node.destroy_node()
        assert stop_process(process) == 0


@pytest.mark.parametrize('name', ['sync_slop_s', 'depth_units_to_m'])
def test_an_infinite_stamp_window_or_depth_scale_is_refused(name):
    """inf passed the >= 0 check and every query then failed (OverflowError in the pairing)."""
    values = {**params.node_param_defaults(), name: float('inf')}
    with pytest.raises(ConfigError, match=f'{name} must be finite'):
        params.node_params_from_values(values)


def test_the_track_client_timeout_is_a_node_parameter_at_least_zero():
    assert params.node_param_defaults()['track_client_timeout_s'] == 10.0
    with pytest.raises(ConfigError, match='track_client_timeout_s must be >= 0'):
        params.node_params_from_values({**params.node_param_defaults(),
                                        'track_client_timeout_s': -1.0})
