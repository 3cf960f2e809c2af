"""``ros2 param set`` over DDS (the node's set_parameters service, which the CLI calls): live
parameters apply to the next call, configure-time ones are refused with how to apply them,
invalid values are refused with the reason, and nothing refused is stored."""
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python
from sensor_msgs.msg import Image

from hybridgl_ros.msg import Segmentation
from ros_helpers import call, stamp_header, wait_for
from small_segmenter import ColourSegmenter, scene_rgb


def _service(h, kind, name):
    client = h.client_node.create_client(kind, f'{h.namespace}/hybridgl_node/{name}')
    assert client.wait_for_service(timeout_sec=5.0)
    return client


def set_parameter(h, name, value):
    """(successful, reason) of setting one parameter, as ``ros2 param set`` does."""
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    result = call(_service(h, SetParameters, 'set_parameters'), request).results[0]
    return result.successful, result.reason


def get_parameter(h, name):
    response = call(_service(h, GetParameters, 'get_parameters'),
                    GetParameters.Request(names=[name]))
    return parameter_value_to_python(response.values[0])


def _transition(h, transition_id):
    request = ChangeState.Request(transition=Transition(id=transition_id))
    assert call(_service(h, ChangeState, 'change_state'), request).success


@pytest.fixture
def active(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    return h


def test_live_parameters_apply_to_the_next_call(active):
    h = active
    assert set_parameter(h, 'max_text_chars', 10) == (True, '')
    response = h.segment('the red square')
    assert not response.success and 'at most 10 are accepted' in response.message
    assert set_parameter(h, 'max_queued_requests', 3)[0] and h.node._requests.max_queued == 3
    h.record('overlay', Image)
    h.record('result', Segmentation)
    assert set_parameter(h, 'publish_overlay', False)[0]
    assert h.segment('red').success
    assert wait_for(lambda: h.received['result']) and not h.received['overlay']
    assert get_parameter(h, 'publish_overlay') is False


@pytest.mark.parametrize('name, value', [('models.sam_checkpoint', '/models/sam_vit_b.pth'),
                                         ('proposals.points_per_side', 16),
                                         ('use_depth', False), ('image_depth', 5)])
def test_configure_time_parameters_are_refused_while_configured(active, name, value):
    before = get_parameter(active, name)
    successful, reason = set_parameter(active, name, value)
    assert not successful
    assert reason == (f'{name} is read at configure: run the lifecycle transitions deactivate '
                      'and cleanup, set it, then configure and activate')
    assert get_parameter(active, name) == before


@pytest.mark.parametrize('name, value, words', [
    ('models.device', 'gpu', 'models.device must be one of auto, cpu, cuda'),
    ('max_text_chars', 0, 'max_text_chars must be >= 1'),
    ('sync_slop_s', -0.1, 'sync_slop_s must be >= 0'),
    ('max_queued_requests', -1, 'max_queued_requests must be >= 0'),
    ('image_reliability', 'sometimes', 'image_reliability must be one of'),
    ('features.mode', 'XYZ', 'features.mode must be one of'),
    ('decision.presence_bias', float('nan'), 'decision.presence_bias must be finite, not nan'),
    ('features.blur_kernel_px', 4, 'features.blur_kernel_px must be odd')])
def test_invalid_values_are_refused_with_the_reason(active, name, value, words):
    before = get_parameter(active, name)
    successful, reason = set_parameter(active, name, value)
    assert not successful and words in reason, reason
    assert get_parameter(active, name) == before


def test_autostart_is_read_only_at_start_up(active):
    assert set_parameter(active, 'autostart', False) == (
        False, 'autostart is read only at start-up: pass it to the node when it starts')


def test_configure_time_parameters_are_accepted_after_cleanup_and_used(active):
    h = active
    _transition(h, Transition.TRANSITION_DEACTIVATE)
    _transition(h, Transition.TRANSITION_CLEANUP)
    assert set_parameter(h, 'models.device', 'gpu')[0] is False  # still checked
    assert set_parameter(h, 'use_depth', False) == (True, '')
    _transition(h, Transition.TRANSITION_CONFIGURE)
    _transition(h, Transition.TRANSITION_ACTIVATE)
    assert [s.topic_name for s in h.node._inputs] == [f'{h.namespace}/image']
    h.publish_image(scene_rgb(), stamp_header(2.0))
    assert h.segment('red').success
