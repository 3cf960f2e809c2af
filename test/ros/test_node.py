"""The node in-process over real DDS: a client calls ~/segment and reads what was published."""
import math
from dataclasses import replace

import numpy as np
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from hybridgl_ros.msg import Segmentation
from hybridgl_ros.ros.conversions import image_to_numpy, numpy_to_image
from hybridgl_ros.srv import SegmentByText
from small_segmenter import ColourSegmenter, scene_rgb
from ros_helpers import CAMERA_FRAME, REPO, call, stamp_header, wait_for


def test_segment_answers_on_the_latest_image(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(10.5))
    response = h.segment('the red square')
    assert response.success, response.message
    result = response.result
    assert result.found and result.header.frame_id == CAMERA_FRAME
    assert result.header.stamp.sec == 10 and result.header.stamp.nanosec == 500_000_000
    assert (result.mask.height, result.mask.width, result.mask.encoding) == (96, 128, 'mono8')
    mask = image_to_numpy(result.mask)
    assert set(np.unique(mask)) == {0, 255}
    assert mask[30:60, 15:45].all() and mask.sum() == 30 * 30 * 255
    assert (result.box.x_offset, result.box.y_offset, result.box.width, result.box.height) == (
        15, 30, 30, 30)
    assert (result.centroid_x_px, result.centroid_y_px) == (29.5, 44.5)
    assert mask[result.interior_y_px, result.interior_x_px] == 255
    assert not result.has_3d
    assert len(result.matching_probs) == 2 and result.index == 0
    assert 'found' in response.message


def test_results_are_published_on_every_output(harness):
    h = harness(ColourSegmenter())
    for name, kind in (('mask', Image), ('result', Segmentation), ('overlay', Image),
                       ('markers', MarkerArray), ('centroid', PointStamped)):
        h.record(name, kind)
    h.publish_image(scene_rgb(), stamp_header(3.0))
    assert h.segment('the blue disc').success
    assert wait_for(lambda: all(h.received[n] for n in ('mask', 'result', 'overlay', 'markers')))
    assert h.received['mask'][0].encoding == 'mono8'
    overlay = h.received['overlay'][0]
    assert (overlay.encoding, overlay.height, overlay.width) == ('rgb8', 96, 128)
    assert h.received['overlay'][0].header.frame_id == CAMERA_FRAME
    assert h.received['result'][0].text == 'the blue disc'
    assert h.received['markers'][0].markers[0].action == Marker.DELETEALL  # no depth: no 3D
    assert not h.received['centroid']  # ~/centroid carries 3D points only


def test_repeated_queries_on_one_frame_prepare_it_once(harness):
    segmenter = ColourSegmenter()
    h = harness(segmenter)
    h.publish_image(scene_rgb(), stamp_header(1.0))
    first, second, third = (h.segment(t) for t in ('red', 'blue', 'the red one'))
    assert first.success and second.success and third.success
    assert segmenter.prepare_calls == 1 and segmenter.query_calls == 3
    assert first.result.prepare_s > 0.0 and second.result.prepare_s == 0.0
    changed = scene_rgb()
    changed[0, 0] = (1, 2, 3)
    h.publish_image(changed, stamp_header(2.0))
    assert h.segment('red').success and segmenter.prepare_calls == 2


def test_a_new_frame_with_the_same_pixels_reuses_the_prepared_work(harness):
    segmenter = ColourSegmenter()
    h = harness(segmenter)
    h.publish_image(scene_rgb(), stamp_header(1.0))
    assert h.segment('red').success
    h.publish_image(scene_rgb(), stamp_header(2.0))
    response = h.segment('blue')
    assert response.success and segmenter.prepare_calls == 1
    assert response.result.header.stamp.sec == 2 and response.result.prepare_s == 0.0
    request_image = numpy_to_image(scene_rgb(), 'rgb8', stamp_header(3.0))
    assert h.segment('red', image=request_image).success and segmenter.prepare_calls == 1


def test_request_image_is_used_instead_of_the_camera(harness):
    h = harness(ColourSegmenter())
    image = scene_rgb()[:, ::-1].copy()  # mirrored: the red square on the right
    response = h.segment('red', image=numpy_to_image(image, 'rgb8', stamp_header(0.0)))
    assert response.success, response.message
    assert response.result.centroid_x_px == 127 - 29.5


def test_bgr_request_image_is_converted(harness):
    h = harness(ColourSegmenter())
    bgr = np.ascontiguousarray(scene_rgb()[:, :, ::-1])
    response = h.segment('red', image=numpy_to_image(bgr, 'bgr8', stamp_header(0.0)))
    assert response.success and response.result.found


def test_no_object_is_a_successful_answer(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    response = h.segment('the green ball')
    assert response.success and not response.result.found
    assert 'no object' in response.message and response.result.index == -1
    assert not image_to_numpy(response.result.mask).any()


def test_prepare_on_arrival_prepares_before_the_query(harness):
    segmenter = ColourSegmenter()
    h = harness(segmenter, prepare_on_arrival=True)
    h.publish_image(scene_rgb(), stamp_header(4.0))
    assert wait_for(lambda: segmenter.prepare_calls == 1)
    response = h.segment('red')
    assert response.success and response.result.prepare_s == 0.0
    assert segmenter.prepare_calls == 1


def _change_state(h, transition_id):
    client = h.client_node.create_client(
        ChangeState, f'{h.namespace}/hybridgl_node/change_state')
    assert client.wait_for_service(timeout_sec=5.0)
    return call(client, ChangeState.Request(transition=Transition(id=transition_id))).success


def test_lifecycle_transitions_over_ros(harness):
    segmenter = ColourSegmenter()
    h = harness(segmenter)
    h.publish_image(scene_rgb(), stamp_header(1.0))
    assert _change_state(h, Transition.TRANSITION_DEACTIVATE)
    response = h.segment('red')
    assert not response.success and 'not active' in response.message
    assert _change_state(h, Transition.TRANSITION_CLEANUP)
    assert 'cleaned up' in h.segment('red').message
    assert _change_state(h, Transition.TRANSITION_CONFIGURE)
    assert _change_state(h, Transition.TRANSITION_ACTIVATE)
    h.publish_image(scene_rgb(), stamp_header(2.0))
    assert h.segment('red').success


def test_the_shutdown_transition_answers_the_running_and_the_waiting_calls_at_once(harness):
    """Three calls, the first in a 3 s query: the transition shutdown answers all three
    "shutting down (lifecycle shutdown)" without waiting for the queue, and ends finalized."""
    h = harness(ColourSegmenter(query_delay_s=3.0))
    h.publish_image(scene_rgb(), stamp_header(1.0))
    futures = [h.client.call_async(SegmentByText.Request(text=f'red {i}')) for i in range(3)]
    assert wait_for(lambda: h.segmenter.query_calls == 1)
    assert _change_state(h, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert wait_for(lambda: all(f.done() for f in futures), timeout=2.0)
    for future in futures:
        response = future.result()
        assert not response.success
        assert response.message == 'the node is shutting down (lifecycle shutdown)'
    assert h.segmenter.query_calls == 1
    assert h.node._state_machine.current_state[1] == 'finalized'


def test_result_and_mask_are_latched_for_a_subscriber_that_comes_later(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    assert h.segment('the blue disc').success and h.segment('the red square').success
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         reliability=ReliabilityPolicy.RELIABLE)
    got = {'result': [], 'mask': []}
    for name, kind in (('result', Segmentation), ('mask', Image)):
        h.client_node.create_subscription(kind, f'{h.namespace}/hybridgl_node/{name}',
                                          got[name].append, latched)
    assert wait_for(lambda: got['result'] and got['mask'])
    assert [r.text for r in got['result']] == ['the red square']  # the last answer only
    assert got['mask'][0].header.stamp.sec == 1


def test_region_of_interest_counts_pixels_and_stays_inside_the_image(harness):
    from hybridgl_ros.ros.results import region_of_interest

    image = np.full((96, 128, 3), 100, np.uint8)
    image[80:, 100:] = (220, 30, 30)  # a red block in the bottom-right corner
    h = harness(ColourSegmenter())
    box = h.segment('red', image=numpy_to_image(image, 'rgb8')).result.box
    assert (box.x_offset, box.y_offset, box.width, box.height) == (100, 80, 28, 16)
    result = ColourSegmenter().query(ColourSegmenter().prepare(image), 'red')
    assert result.box_xywh == (100, 80, 27, 15)  # SAM's convention: max - min
    overshoot = region_of_interest(replace(result, box_xywh=(100, 80, 50, 50)))
    assert (overshoot.width, overshoot.height) == (28, 16)


def test_nothing_found_has_a_nan_pixel_centroid_as_documented(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    result = h.segment('the green ball').result
    assert not result.found and math.isnan(result.centroid_x_px)
    assert (result.interior_x_px, result.index, result.box.width) == (-1, -1, 0)
    assert 'NaN if found is false' in (REPO / 'msg' / 'Segmentation.msg').read_text()


def test_a_signal_kept_before_start_up_exits_without_starting_the_node(capsys):
    """node_main keeps a SIGINT that comes while the node module is imported; main then exits
    0 at once, before rclpy.init and the models (and says why)."""
    import signal as signals

    from hybridgl_ros.ros.node import main

    def never(config):
        raise AssertionError('no segmenter may be made')

    previous = {s: signals.getsignal(s) for s in (signals.SIGINT, signals.SIGTERM)}
    try:
        assert main([], segmenter_factory=never, early_signals=[signals.SIGINT]) == 0
    finally:
        for signum, handler in previous.items():
            signals.signal(signum, handler)
    assert 'SIGINT before start-up: exiting' in capsys.readouterr().err
