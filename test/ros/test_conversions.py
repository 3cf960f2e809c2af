"""Image message <-> numpy conversions: every encoding, row padding, byte order, bad data."""
import warnings

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.ros.conversions import (
    depth_to_meters, image_to_numpy, image_to_rgb, mask_to_image, numpy_to_image)

RNG = np.random.default_rng(0)


def _padded(array, encoding, pad_bytes, bigendian=False):
    """An Image message with ``pad_bytes`` of junk after every row."""
    height, width = array.shape[:2]
    data = array.astype(array.dtype.newbyteorder('>' if bigendian else '<'))
    rows = data.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad_bytes), 7, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize('encoding,shape,dtype', [
    ('rgb8', (5, 7, 3), np.uint8), ('bgr8', (5, 7, 3), np.uint8),
    ('rgba8', (5, 7, 4), np.uint8), ('bgra8', (5, 7, 4), np.uint8),
    ('mono8', (5, 7), np.uint8), ('mono16', (5, 7), np.uint16),
    ('16UC1', (5, 7), np.uint16), ('32FC1', (5, 7), np.float32)])
def test_round_trip_keeps_pixels(encoding, shape, dtype):
    array = (RNG.random(shape) * 1000).astype(dtype)
    header = Header(frame_id='camera_optical')
    msg = numpy_to_image(array, encoding, header)
    assert msg.header.frame_id == 'camera_optical'
    assert msg.step == array.shape[1] * array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
    np.testing.assert_array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize('encoding,dtype', [('rgb8', np.uint8), ('16UC1', np.uint16),
                                            ('32FC1', np.float32)])
def test_row_padding_is_skipped(encoding, dtype):
    shape = (4, 6, 3) if encoding == 'rgb8' else (4, 6)
    array = (RNG.random(shape) * 500).astype(dtype)
    np.testing.assert_array_equal(image_to_numpy(_padded(array, encoding, 10)), array)


@pytest.mark.parametrize('encoding,dtype', [('16UC1', np.uint16), ('32FC1', np.float32)])
def test_big_endian_data_is_decoded(encoding, dtype):
    array = (RNG.random((3, 5)) * 4000 + 1).astype(dtype)
    msg = _padded(array, encoding, 0, bigendian=True)
    np.testing.assert_array_equal(image_to_numpy(msg), array)


def test_bgr_and_bgra_become_rgb():
    rgb = RNG.integers(0, 255, (4, 5, 3), dtype=np.uint8)
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((4, 5, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(numpy_to_image(rgb[:, :, ::-1].copy(), 'bgr8')),
                                  rgb)
    np.testing.assert_array_equal(image_to_rgb(numpy_to_image(bgra, 'bgra8')), rgb)


def test_mono8_becomes_grey_rgb():
    grey = RNG.integers(0, 255, (4, 5), dtype=np.uint8)
    rgb = image_to_rgb(numpy_to_image(grey, 'mono8'))
    assert rgb.shape == (4, 5, 3)
    np.testing.assert_array_equal(rgb[:, :, 1], grey)


def test_depth_16uc1_is_millimetres_and_zero_is_nan():
    depth_mm = np.array([[0, 1000], [1500, 65535]], np.uint16)
    meters = depth_to_meters(numpy_to_image(depth_mm, '16UC1'))
    assert np.isnan(meters[0, 0])
    np.testing.assert_allclose(meters[0, 1:], [1.0])
    np.testing.assert_allclose(meters[1], [1.5, 65.535], rtol=1e-6)


def test_a_16uc1_scale_past_float32_gives_no_measurement_without_a_warning():
    depth = numpy_to_image(np.array([[0, 1], [2, 65535]], np.uint16), '16UC1')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        meters = depth_to_meters(depth, units_to_m=1e300)
    assert np.isnan(meters).all()


def test_depth_32fc1_is_metres_and_invalid_values_are_nan():
    depth_m = np.array([[0.0, np.nan], [np.inf, 2.25]], np.float32)
    meters = depth_to_meters(numpy_to_image(depth_m, '32FC1'))
    assert np.isnan(meters[:, 0]).all() and np.isnan(meters[0, 1])
    assert meters[1, 1] == pytest.approx(2.25)


def test_mask_becomes_mono8_0_and_255():
    mask = np.array([[True, False], [False, True]])
    msg = mask_to_image(mask)
    assert msg.encoding == 'mono8'
    np.testing.assert_array_equal(image_to_numpy(msg), [[255, 0], [0, 255]])


def test_unsupported_encoding_names_the_supported_ones():
    msg = Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8))
    with pytest.raises(InvalidInputError, match='unsupported image encoding.*rgb8'):
        image_to_numpy(msg)


def test_data_length_mismatch_is_an_error():
    msg = Image(height=4, width=4, encoding='rgb8', step=12, data=bytes(40))
    with pytest.raises(InvalidInputError, match='40 bytes.*48 expected'):
        image_to_numpy(msg)


def test_step_smaller_than_a_row_is_an_error():
    msg = Image(height=2, width=4, encoding='rgb8', step=8, data=bytes(16))
    with pytest.raises(InvalidInputError, match='step 8'):
        image_to_numpy(msg)


def test_empty_image_is_an_error():
    with pytest.raises(InvalidInputError, match='empty image'):
        image_to_numpy(Image(encoding='rgb8'))


def test_depth_encoding_is_not_a_colour_picture():
    msg = numpy_to_image(np.zeros((2, 2), np.uint16), '16UC1')
    with pytest.raises(InvalidInputError, match='not a colour picture'):
        image_to_rgb(msg)


def test_array_that_does_not_fit_the_encoding_is_refused():
    with pytest.raises(InvalidInputError, match='is not rgb8'):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'rgb8')
