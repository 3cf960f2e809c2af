"""3D centroid from synthetic depth with known intrinsics (16UC1 mm and 32FC1 m), paired when
the image is selected, only from depth registered to the colour frame, back-projected with P."""
import threading
import time
import warnings

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo
from visualization_msgs.msg import Marker, MarkerArray

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.ros.depth import (
    Intrinsics, image_mask_centroid_3d, mask_centroid_3d, resize_mask)
from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.ros.depth_pairing import DepthSync
from hybridgl_ros.ros.sync import StampBuffer, stamp_ns
from ros_helpers import CAMERA_FRAME, camera_info, stamp_header, wait_for
from small_segmenter import ColourSegmenter, scene_rgb

H, W = 96, 128
FX, FY, CX, CY = 100.0, 110.0, 64.0, 48.0
# The red square covers rows 30..59, columns 15..44: median pixel (29.5, 44.5).
SQUARE = (slice(30, 60), slice(15, 45))


def _expected_xyz(z, u=29.5, v=44.5, fx=FX, fy=FY, cx=CX, cy=CY):
    return ((u - cx) * z / fx, (v - cy) * z / fy, z)


def test_back_projection_median_of_a_plane():
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), 1.5, np.float32)
    centroid = mask_centroid_3d(mask, depth, Intrinsics(FX, FY, CX, CY))
    np.testing.assert_allclose(centroid.xyz_m, _expected_xyz(1.5), atol=1e-9)
    assert centroid.valid_px == 900


def test_median_ignores_background_depth_bleeding_into_the_mask():
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), 2.0, np.float32)
    depth[30:60, 15:18] = 9.0  # a thin edge column of background depth under the mask
    assert mask_centroid_3d(mask, depth, Intrinsics(FX, FY, CX, CY)).xyz_m[2] == 2.0


def test_too_few_valid_pixels_give_no_centroid():
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), np.nan, np.float32)
    depth[40, 20:25] = 1.0
    assert mask_centroid_3d(mask, depth, Intrinsics(FX, FY, CX, CY), min_valid_px=10) is None


def test_a_half_size_depth_image_gives_the_same_point():
    """Colour mask at full size, depth and its camera_info at full size, then at half size."""
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    k = Intrinsics(FX, FY, CX, CY)
    full, note = image_mask_centroid_3d(mask, np.full((H, W), 2.0, np.float32), k, (H, W), 10)
    half, _ = image_mask_centroid_3d(mask, np.full((H // 2, W // 2), 2.0, np.float32), k,
                                     (H, W), 10)
    assert note == ''
    np.testing.assert_allclose(full.xyz_m, _expected_xyz(2.0), atol=1e-9)
    # within one full-size pixel at 2 m (the mask is resampled to the depth grid, nearest)
    np.testing.assert_allclose(half.xyz_m, full.xyz_m, atol=2.0 / FX + 1e-9)


def test_no_depth_under_the_mask_says_so():
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    k = Intrinsics(FX, FY, CX, CY)
    centroid, note = image_mask_centroid_3d(mask, np.zeros((H, W), np.float32), k, (0, 0), 10)
    assert centroid is None and 'no valid depth' in note


def test_depth_beyond_max_depth_is_no_measurement():
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), 1e38, np.float32)  # a corrupt reading, finite
    k = Intrinsics(FX, FY, CX, CY)
    centroid, note = image_mask_centroid_3d(mask, depth, k, (H, W), 10, max_depth_m=100.0)
    assert centroid is None and 'beyond max_depth_m = 100 m' in note
    depth[SQUARE] = 2.0
    depth[30:60, 15:18] = 150.0  # an edge of far readings: left out, not in the median's box
    centroid, _ = image_mask_centroid_3d(mask, depth, k, (H, W), 10, max_depth_m=100.0)
    assert centroid.valid_px == 30 * 27 and centroid.box_max_m[2] == 2.0
    unlimited, _ = image_mask_centroid_3d(mask, depth, k, (H, W), 10, max_depth_m=0.0)
    assert unlimited.valid_px == 900


def test_depth_below_min_depth_is_no_measurement():
    """A denormal depth (1e-45 m), or 32FC1 bytes read in the wrong byte order (~1e-41 m)."""
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), 1e-45, np.float32)
    k = Intrinsics(FX, FY, CX, CY)
    centroid, note = image_mask_centroid_3d(mask, depth, k, (H, W), 10, 100.0, min_depth_m=0.01)
    assert centroid is None
    assert note == ('no valid depth under the mask (zero/NaN, below min_depth_m = 0.01 m, '
                    'beyond max_depth_m = 100 m): 2D result only')
    depth[SQUARE] = 0.3
    assert image_mask_centroid_3d(mask, depth, k, (H, W), 10, 100.0, 0.01)[0].xyz_m[2] == \
        pytest.approx(0.3)


@pytest.mark.parametrize('intrinsics, says', [
    (Intrinsics(1e-3, 1e-3, CX, CY), 'field of view of 179° or more'),
    (Intrinsics(FX, 0.4, CX, CY), 'field of view of 179° or more'),
    (Intrinsics(FX, FY, 1e30, CY), 'principal point (1e+30, 48)'),
    (Intrinsics(FX, FY, CX, -200.0), 'lies more than the image\'s size outside'),
])
def test_intrinsics_that_cannot_be_the_depth_images_give_no_3d(intrinsics, says):
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    centroid, note = image_mask_centroid_3d(mask, np.full((H, W), 2.0, np.float32), intrinsics,
                                            (H, W), 10)
    assert centroid is None and says in note and note.startswith('depth unusable')


def test_too_few_valid_pixels_say_how_many_and_a_bad_principal_point_is_named():
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), np.nan, np.float32)
    depth[40, 20:25] = 1.0
    k = Intrinsics(FX, FY, CX, CY)
    assert image_mask_centroid_3d(mask, depth, k, (H, W), 10)[1] == (
        'only 5 valid depth pixel(s) under the mask, fewer than depth_min_valid_px = 10: '
        '2D result only')
    with pytest.raises(InvalidInputError, match=r'unusable P \(fx=100.0, fy=110.0, cx=nan'):
        Intrinsics.from_camera_info([0.0] * 9, [FX, 0, np.nan, 0, 0, FY, CY, 0, 0, 0, 1, 0])


def test_camera_info_scaled_past_float_range_and_limits_past_float32_are_handled():
    """A 1x1 camera_info with fx = 1e307 scaled to the depth image overflows: refused. Depth
    limits beyond float32's range compare without overflow warnings."""
    mask = np.zeros((H, W), bool)
    mask[SQUARE] = True
    depth = np.full((H, W), 2.0, np.float32)
    centroid, note = image_mask_centroid_3d(mask, depth, Intrinsics(1e307, 1e307, 0.0, 0.0),
                                            (1, 1), 10)
    assert centroid is None and 'is not finite' in note
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        centroid, _ = image_mask_centroid_3d(mask, depth, Intrinsics(FX, FY, CX, CY), (H, W), 10,
                                             max_depth_m=1e308, min_depth_m=1e-300)
    assert centroid.xyz_m[2] == 2.0


def test_a_wide_but_real_field_of_view_is_accepted():
    """A rectified wide-angle camera: 170° across (fx = W / (2 tan 85°))."""
    fx = W / (2 * np.tan(np.radians(85.0)))
    assert Intrinsics(fx, fx, CX, CY).implausible_for(H, W) == ''
    assert Intrinsics(FX, FY, -W + 1.0, 2 * H - 1.0).implausible_for(H, W) == ''


def test_scaled_intrinsics_match_a_half_size_image():
    half = Intrinsics(FX, FY, CX, CY).scaled(0.5, 0.5)
    assert half.fx == FX / 2 and half.cx == pytest.approx((CX + 0.5) / 2 - 0.5)


def test_resize_mask_nearest_neighbour():
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    np.testing.assert_array_equal(resize_mask(mask, 2, 2), [[True, False], [False, False]])


def test_stamp_buffer_pairs_within_slop():
    buffer = StampBuffer(size=3)
    for t in (1.0, 1.1, 1.2, 1.3):
        buffer.add(PointStamped(header=stamp_header(t)))
    assert buffer.nearest(int(1.22e9), int(0.05e9)).header == stamp_header(1.2)
    assert buffer.nearest(int(1.0e9), int(0.05e9)) is None  # dropped (size 3)
    assert buffer.nearest(int(2.0e9), int(0.05e9)) is None


def _depth_at(t):
    return numpy_to_image(np.full((2, 2), t, np.float32), '32FC1', stamp_header(t))


def test_a_watch_keeps_the_frames_own_depth_that_arrives_late_while_the_buffer_turns_over():
    """The colour frame at 1.0 s is selected before its depth arrives; the neighbour at 0.99 s
    is buffered. The frame's own depth arrives while SAM and CLIP run, then 40 more frames push
    it out of the 30-message buffer: the watch still has it."""
    sync = DepthSync(size=30)
    sync.add_depth(_depth_at(0.99))
    sync.add_info(CameraInfo(header=stamp_header(0.99)))
    with sync.watch(stamp_header(1.0), slop_s=0.05) as watch:
        for i in range(41):
            sync.add_depth(_depth_at(1.0 + i / 30))
            sync.add_info(CameraInfo(header=stamp_header(1.0 + i / 30)))
    assert isinstance(sync.pair(stamp_header(1.0), 0.05), str)  # the buffer has moved on
    pair = watch.pair()
    assert stamp_ns(pair.depth.header) == stamp_ns(stamp_header(1.0))
    assert stamp_ns(pair.info.header) == stamp_ns(stamp_header(1.0))


def test_no_depth_at_all_says_none_has_arrived_not_a_timing_problem():
    """A player that publishes no depth: the note says none has arrived (it said 'no depth
    image within sync_slop_s', which reads like a stamp problem)."""
    sync = DepthSync()
    sync.add_info(CameraInfo(header=stamp_header(5.0)))
    assert sync.pair(stamp_header(5.0), 0.05) == (
        'no depth image has arrived yet: 2D result only (use_depth = false for 2D without '
        'this note)')
    sync.add_depth(_depth_at(9.0))  # one has arrived, too far from the frame: timing
    assert 'within sync_slop_s' in sync.pair(stamp_header(5.0), 0.05)
    assert DepthSync().pair(stamp_header(1.0), 0.05).startswith('no depth image has arrived')


def test_a_watch_without_depth_in_the_slop_says_so_and_keeps_the_latest_camera_info():
    sync = DepthSync()
    sync.add_info(CameraInfo(header=stamp_header(0.0)))
    with sync.watch(stamp_header(5.0), slop_s=0.05) as watch:
        sync.add_depth(_depth_at(7.0))
        sync.add_info(CameraInfo(header=stamp_header(7.0)))
    assert watch.pair() == 'no depth image within sync_slop_s of the image: 2D result only'
    sync.add_depth(_depth_at(5.01))
    pair = sync.pair(stamp_header(5.0), 0.05)
    assert stamp_ns(pair.info.header) == stamp_ns(stamp_header(7.0))  # the latest


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1'])
def test_node_gives_the_3d_centroid(harness, encoding):
    h = harness(ColourSegmenter())
    h.record('centroid', PointStamped)
    h.record('markers', MarkerArray)
    header = stamp_header(5.0)
    if encoding == '16UC1':
        depth = np.full((H, W), 1500, np.uint16)  # millimetres
    else:
        depth = np.full((H, W), 1.5, np.float32)  # metres
    h.publish_depth(depth, encoding, camera_info(header, H, W, FX, FY, CX, CY))
    h.publish_image(scene_rgb(), header)
    response = h.segment('the red square')
    assert response.success and response.result.has_3d, response.message
    point = response.result.centroid_3d
    assert point.header.frame_id == CAMERA_FRAME
    np.testing.assert_allclose([point.point.x, point.point.y, point.point.z],
                               _expected_xyz(1.5), atol=1e-6)
    assert '3D' in response.message
    assert wait_for(lambda: h.received['centroid'] and h.received['markers'])
    assert h.received['centroid'][0].point.z == pytest.approx(1.5)
    kinds = [m.type for m in h.received['markers'][0].markers]
    assert kinds == [Marker.SPHERE, Marker.CUBE, Marker.TEXT_VIEW_FACING]


def test_half_resolution_depth_is_paired_and_scaled(harness):
    h = harness(ColourSegmenter())
    header = stamp_header(6.0)
    info = camera_info(header, H // 2, W // 2, FX / 2, FY / 2, (CX + 0.5) / 2 - 0.5,
                       (CY + 0.5) / 2 - 0.5)
    h.publish_depth(np.full((H // 2, W // 2), 2.0, np.float32), '32FC1', info)
    h.publish_image(scene_rgb(), header)
    result = h.segment('red').result
    assert result.has_3d
    x, y, z = result.centroid_3d.point.x, result.centroid_3d.point.y, result.centroid_3d.point.z
    np.testing.assert_allclose([x, y, z], _expected_xyz(2.0), atol=0.02)


def test_nan_and_zero_depth_under_the_mask_give_a_2d_result(harness):
    h = harness(ColourSegmenter())
    header = stamp_header(7.0)
    depth = np.full((H, W), 1.0, np.float32)
    depth[SQUARE] = np.nan
    depth[30:60, 15:20] = 0.0
    h.publish_depth(depth, '32FC1', camera_info(header, H, W, FX, FY, CX, CY))
    h.publish_image(scene_rgb(), header)
    response = h.segment('the red square')
    assert response.success and response.result.found and not response.result.has_3d
    assert 'no valid depth under the mask' in response.message
    assert h.segment('the blue disc').result.has_3d  # depth elsewhere still works


def test_a_corrupt_far_depth_and_a_bad_camera_info_give_a_2d_result_that_says_why(harness):
    h = harness(ColourSegmenter())
    header = stamp_header(7.5)
    h.publish_depth(np.full((H, W), 1e38, np.float32), '32FC1',
                    camera_info(header, H, W, FX, FY, CX, CY))
    h.publish_image(scene_rgb(), header)
    response = h.segment('the red square')
    assert response.success and response.result.found and not response.result.has_3d
    assert 'beyond max_depth_m = 100 m' in response.message
    header = stamp_header(7.6)
    h.publish_depth(np.full((H, W), 1.0, np.float32), '32FC1',
                    camera_info(header, H, W, 1e-9, 1e-9, CX, CY))
    h.publish_image(scene_rgb(), header)
    response = h.segment('the red square')
    assert response.success and response.result.found and not response.result.has_3d
    assert 'field of view of 179° or more' in response.message


def test_depth_stamped_too_far_from_the_image_is_not_used(harness):
    h = harness(ColourSegmenter(), sync_slop_s=0.02)
    h.publish_depth(np.full((H, W), 1.0, np.float32), '32FC1',
                    camera_info(stamp_header(8.0), H, W, FX, FY, CX, CY))
    h.publish_image(scene_rgb(), stamp_header(8.1))
    response = h.segment('red')
    assert response.success and not response.result.has_3d
    assert 'no depth image within sync_slop_s' in response.message


def _stream(h, stop, frames, depth_frame=CAMERA_FRAME, period_s=1 / 30):
    """Publishes image + depth + camera_info at 30 Hz; frame i is stamped 20 + i/30 s and its
    depth is a plane at 1 + i/100 m. Appends (stamp_s, depth_m) of each frame to ``frames``."""
    image = numpy_to_image(scene_rgb(), 'rgb8')
    i = 0
    while not stop.is_set():
        stamp, z = 20.0 + i / 30.0, 1.0 + i / 100.0
        header = stamp_header(stamp)
        image.header = header
        depth = numpy_to_image(np.full((H, W), z, np.float32), '32FC1',
                               stamp_header(stamp, depth_frame))
        info = camera_info(stamp_header(stamp, depth_frame), H, W, FX, FY, CX, CY)
        for topic, msg in (('depth', depth), ('camera_info', info), ('image', image)):
            h.publishers[topic].publish(msg)
        frames.append((stamp, z))
        i += 1
        time.sleep(period_s)


@pytest.fixture
def streaming(harness):
    """``streaming(segmenter, **params)`` -> (harness, frames) with a 30 Hz RGB-D stream."""
    threads, stop = [], threading.Event()

    def start(segmenter, depth_frame=CAMERA_FRAME, **params):
        h = harness(segmenter, **params)
        for publisher in h.publishers.values():
            assert wait_for(lambda p=publisher: p.get_subscription_count() > 0)
        frames = []
        threads.append(threading.Thread(target=_stream, args=(h, stop, frames, depth_frame)))
        threads[-1].start()
        assert wait_for(lambda: len(frames) > 5 and h.node._depth.depths.latest())
        return h, frames

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5.0)


def test_3d_survives_a_frame_that_takes_longer_to_prepare_than_the_depth_buffer_holds(streaming):
    """Preparing lasts until 40 more RGB-D frames have arrived (the buffers hold 30): counted, not
    timed, so a slow machine's slower stream cannot shorten it."""
    segmenter = ColourSegmenter()
    h, frames = streaming(segmenter)
    prepare = segmenter.prepare

    def slow_prepare(image_rgb):
        seen = len(frames)
        assert wait_for(lambda: len(frames) >= seen + 40, timeout=20.0)
        return prepare(image_rgb)

    segmenter.prepare = slow_prepare
    response = h.segment('the red square', timeout=40.0)
    assert response.success and response.result.found, response.message
    result = response.result
    assert result.has_3d, response.message
    stamp = result.header.stamp.sec + result.header.stamp.nanosec * 1e-9
    depth_of_frame = next(z for s, z in frames if abs(s - stamp) < 1e-6)
    assert result.centroid_3d.point.z == pytest.approx(depth_of_frame, abs=1e-5)
    assert len([s for s, _ in frames if s > stamp]) > 30  # the buffer has moved on


def test_depth_in_another_frame_than_the_colour_image_gives_no_3d(streaming):
    h, _ = streaming(ColourSegmenter(), depth_frame='camera_depth_optical_frame')
    response = h.segment('the red square')
    assert response.success and response.result.found and not response.result.has_3d
    assert "in frame 'camera_depth_optical_frame', the colour image in " in response.message
    assert 'require_registered_depth' in response.message


def test_unregistered_depth_is_used_when_the_rule_is_off(streaming):
    h, _ = streaming(ColourSegmenter(), depth_frame='camera_depth_optical_frame',
                     require_registered_depth=False)
    response = h.segment('the red square')
    assert response.result.has_3d, response.message
    assert response.result.centroid_3d.header.frame_id == CAMERA_FRAME


def test_back_projection_uses_the_rectified_projection_matrix_p(harness):
    h = harness(ColourSegmenter())
    header = stamp_header(9.0)
    info = camera_info(header, H, W, FX, FY, CX, CY)
    info.k = [FX * 0.8, 0.0, CX - 5, 0.0, FY * 0.8, CY - 5, 0.0, 0.0, 1.0]  # raw camera, unused
    h.publish_depth(np.full((H, W), 1.5, np.float32), '32FC1', info)
    h.publish_image(scene_rgb(), header)
    point = h.segment('the red square').result.centroid_3d.point
    np.testing.assert_allclose([point.x, point.y, point.z], _expected_xyz(1.5), atol=1e-6)


def test_intrinsics_fall_back_to_k_when_p_is_unset():
    k = (FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0)
    assert Intrinsics.from_camera_info(k, [0.0] * 12) == Intrinsics(FX, FY, CX, CY)
    p = (2 * FX, 0.0, 1.0, 0.0, 0.0, 2 * FY, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert Intrinsics.from_camera_info(k, p) == Intrinsics(2 * FX, 2 * FY, 1.0, 2.0)
