"""Every bad input gets success=false and a reason; the node survives and the next call works."""
import json
import time

import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image

from rclpy.node import Node
from rclpy.parameter import Parameter

from hybridgl_ros.core.models import DEMO_SAM_WEIGHTS
from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.ros.node import HybridGLNode
from hybridgl_ros.srv import SegmentByText
from ros_helpers import Spinner, call, stamp_header, wait_for
from small_segmenter import ColourSegmenter, scene_rgb
from tiny_models import TINY_CLIP_CONFIG


@pytest.fixture
def ready(harness):
    """A harness whose node holds a fresh camera frame."""
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    return h


def _assert_fails_then_recovers(h, response, *words):
    assert not response.success
    for word in words:
        assert word in response.message, response.message
    good = h.segment('the red square')
    assert good.success and good.result.found, good.message


def test_no_image_yet(harness):
    h = harness(ColourSegmenter())
    response = h.segment('the red square')
    assert not response.success and 'no image received yet' in response.message
    assert 'image' in response.message
    h.publish_image(scene_rgb(), stamp_header(1.0))
    assert h.segment('the red square').success


def test_image_older_than_max_age(harness):
    h = harness(ColourSegmenter(), max_image_age_s=0.3)
    h.publish_image(scene_rgb(), stamp_header(1.0))
    time.sleep(0.4)
    response = h.segment('the red square')
    assert not response.success and 'max_image_age_s' in response.message
    h.publish_image(scene_rgb(), stamp_header(2.0))
    assert h.segment('the red square').success


@pytest.mark.parametrize('text', ['', '   \t\n', '\u200b\u200b', '\u3000\ufeff\u2060 '])
def test_empty_or_whitespace_text(ready, text):
    _assert_fails_then_recovers(ready, ready.segment(text), 'text is empty')


def test_text_longer_than_allowed(ready):
    text = 'the red square ' * 100  # 1500 characters > max_text_chars = 1000
    _assert_fails_then_recovers(ready, ready.segment(text), '1500 characters', 'max_text_chars')


def test_unsupported_encoding(ready):
    image = Image(height=4, width=4, encoding='yuv422', step=8, data=bytes(32))
    _assert_fails_then_recovers(ready, ready.segment('red', image=image),
                                'yuv422', 'rgb8')


def test_depth_encoding_as_the_picture(ready):
    image = numpy_to_image(np.ones((8, 8), np.float32), '32FC1')
    _assert_fails_then_recovers(ready, ready.segment('red', image=image), 'not a colour picture')


def test_data_length_does_not_match_size(ready):
    image = Image(height=96, width=128, encoding='rgb8', step=384, data=bytes(1000))
    _assert_fails_then_recovers(ready, ready.segment('red', image=image), '1000 bytes',
                                'expected')


def test_step_too_small(ready):
    image = Image(height=4, width=4, encoding='rgb8', step=4, data=bytes(16))
    _assert_fails_then_recovers(ready, ready.segment('red', image=image), 'step 4')


def test_zero_proposals_is_a_successful_no_object(ready):
    blank = np.full((96, 128, 3), 128, np.uint8)
    response = ready.segment('the red square', image=numpy_to_image(blank, 'rgb8'))
    assert response.success and not response.result.found
    assert 'no masks proposed' in response.message
    assert ready.segment('the red square').result.found


class _OutOfMemoryOnce(ColourSegmenter):
    def __init__(self):
        super().__init__()
        self.failed = False

    def query(self, frame, text):
        if not self.failed:
            self.failed = True
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return super().query(frame, text)


def test_cuda_out_of_memory_fails_the_answer_not_the_node(harness):
    h = harness(_OutOfMemoryOnce())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    response = h.segment('the red square')
    assert not response.success and 'out of memory' in response.message
    assert 'keeps serving' in response.message
    assert h.segment('the red square').success


class _Buggy(ColourSegmenter):
    def query(self, frame, text):
        raise ZeroDivisionError('a bug')


def test_unexpected_error_is_reported_and_the_node_survives(harness):
    h = harness(_Buggy())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    for _ in range(2):
        response = h.segment('red')
        assert not response.success and 'internal error: ZeroDivisionError' in response.message


@pytest.fixture
def tiny_clip_json(tmp_path):
    path = tmp_path / 'tiny_clip.json'
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    return str(path)


def _write_weights(path, kind):
    """A weight file of one bad kind (None: leave it missing)."""
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'random_bytes':
        path.write_bytes(np.random.default_rng(1).bytes(4096))
    elif kind == 'no_tensors':
        torch.save({'epoch': 3, 'note': 'not weights'}, path)
    elif kind == 'another_model':
        path.write_bytes(DEMO_SAM_WEIGHTS.read_bytes())  # SAM's weights where CLIP's belong


BAD_WEIGHTS = {
    'missing': 'not found', 'empty': 'is empty (0 bytes)',
    'random_bytes': 'not a torch checkpoint (corrupt or incomplete download?)',
    'no_tensors': 'holds no tensors', 'another_model': 'looks like a SAM checkpoint'}


@pytest.mark.parametrize('kind', list(BAD_WEIGHTS))
def test_bad_checkpoint_keeps_the_node_up_and_says_why(ros_context, tmp_path, tiny_clip_json,
                                                       kind):
    weights = tmp_path / 'clip_weights.pt'
    _write_weights(weights, kind)
    namespace = f'/bad_{kind}'
    node = HybridGLNode(context=ros_context, namespace=namespace, parameter_overrides=[
        Parameter('models.clip_model', value=tiny_clip_json),
        Parameter('models.clip_weights', value=str(weights)),
        Parameter('models.device', value='cpu')])  # the real loader: HybridGL.from_config
    client_node = Node('client', context=ros_context, namespace=namespace)
    client = client_node.create_client(SegmentByText, f'{namespace}/hybridgl_node/segment')
    spinner = Spinner(ros_context, node, client_node)
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        assert wait_for(lambda: node._not_ready.startswith('models not loaded'), timeout=60)
        for _ in range(2):
            response = call(client, SegmentByText.Request(text='the red square'))
            assert not response.success and 'models not loaded' in response.message
            assert str(weights) in response.message and BAD_WEIGHTS[kind] in response.message
            assert 'weights_only' not in response.message and len(response.message) < 800
    finally:
        spinner.stop()
        node.destroy_node()
        client_node.destroy_node()


def test_a_missing_sam_checkpoint_is_reported_before_any_model_is_built(ros_context, tmp_path):
    """The SAM architecture JSON does not exist either: building anything first (CLIP, then
    SAM's architecture, as the node did) reports that instead of the missing checkpoint."""
    node = HybridGLNode(context=ros_context, namespace='/no_sam', parameter_overrides=[
        Parameter('models.sam_model_type', value=str(tmp_path / 'no_such_arch.json')),
        Parameter('models.sam_checkpoint', value='/models/sam_vit_h_4b8939.pth')])
    spinner = Spinner(ros_context, node)
    try:
        assert wait_for(lambda: node._not_ready.startswith('models not loaded'), timeout=30)
        assert 'checkpoint not found: /models/sam_vit_h_4b8939.pth' in node._not_ready, (
            node._not_ready)
    finally:
        spinner.stop()
        node.destroy_node()


def test_a_thin_frame_is_refused_with_the_aspect_ratio_limit(ros_context):
    """The real pipeline with the embedded demo models (SAM at 256 px: at most 512:1)."""
    node = HybridGLNode(context=ros_context, namespace='/thin', parameter_overrides=[
        Parameter('models.device', value='cpu'), Parameter('max_image_age_s', value=0.0)])
    client_node = Node('client', context=ros_context, namespace='/thin')
    client = client_node.create_client(SegmentByText, '/thin/hybridgl_node/segment')
    spinner = Spinner(ros_context, node, client_node)
    try:
        assert wait_for(lambda: node._active, timeout=60)
        thin = numpy_to_image(np.full((2, 10000, 3), 128, np.uint8), 'rgb8')
        response = call(client, SegmentByText.Request(text='the red cube', image=thin), 60)
        assert not response.success
        assert 'aspect ratio of 5000:1' in response.message and 'At most 512:1' in (
            response.message), response.message
        # one past the working-pixel budget: named by the size sent, not the downscaled size
        wide = numpy_to_image(np.full((4, 20000, 3), 128, np.uint8), 'rgb8')
        response = call(client, SegmentByText.Request(text='the red cube', image=wide), 60)
        assert not response.success and 'the image is 20000x4' in response.message, (
            response.message)
        fine = numpy_to_image(scene_rgb(), 'rgb8')
        assert call(client, SegmentByText.Request(text='the red cube', image=fine), 60).success
    finally:
        spinner.stop()
        node.destroy_node()
        client_node.destroy_node()


def test_control_characters_of_the_text_are_escaped_in_the_message(ready):
    response = ready.segment('the red x\x1b[2J\u202ey square')  # the phrase: 'x... square'
    assert response.success and response.result.found
    assert not any(c in response.message for c in '\x1b\u202e'), repr(response.message)
    assert '\\u001b' in response.message and '\\u202e' in response.message


def test_printable_escapes_line_breaks_escapes_and_bidi_overrides():
    from hybridgl_ros.ros.results import printable

    assert printable('a\nb\r\x1b[2J\u202e\tc d é 猫') == (
        'a\\u000ab\\u000d\\u001b[2J\\u202e\\u0009c d é 猫')


def test_a_frame_stamped_too_long_ago_is_refused_when_stamps_are_checked(harness):
    h = harness(ColourSegmenter(), max_stamp_age_s=5.0)
    h.publish_image(scene_rgb(), stamp_header(1.0))  # 1970: a replayed or unsynchronised frame
    response = h.segment('the red square')
    assert not response.success and 'max_stamp_age_s = 5' in response.message
    now = h.node.get_clock().now().nanoseconds * 1e-9
    h.publish_image(scene_rgb(), stamp_header(now + 3600.0))   # an hour ahead: refused too
    response = h.segment('the red square')
    assert not response.success and 'in the future' in response.message, response.message
    h.publish_image(scene_rgb(), stamp_header(now))
    assert h.segment('the red square').success
