"""The answer fields a planner acts on, over real DDS: confidence, ambiguous + alternatives, and
"not found" with why, in the service response and on ~/result."""
import math

from hybridgl_ros.msg import Alternative, Segmentation
from small_segmenter import (
    ABSENT_CONFIDENCE, COLOURS_RGB, FOUND_CONFIDENCE, TIED_CONFIDENCE, ColourSegmenter, scene_rgb)
from ros_helpers import stamp_header, wait_for


def _two_red_squares():
    image = scene_rgb()
    image[70:90, 90:110] = COLOURS_RGB['red']     # a second red square, right and below
    return image


def test_a_single_match_carries_its_confidence_and_no_alternatives(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(1.0))
    response = h.segment('the blue disc')
    assert response.success and response.result.found
    assert math.isclose(response.result.confidence, FOUND_CONFIDENCE, rel_tol=1e-6)
    assert not response.result.ambiguous and len(response.result.alternatives) == 0
    assert 'confidence 0.90' in response.message


def test_two_look_alikes_give_an_ambiguous_answer_with_the_other_as_alternative(harness):
    h = harness(ColourSegmenter())
    h.record('result', Segmentation)
    h.publish_image(_two_red_squares(), stamp_header(2.0))
    response = h.segment('the red square')
    result = response.result
    assert response.success and result.found and result.ambiguous
    assert len(result.alternatives) == 1
    other = result.alternatives[0]
    assert isinstance(other, Alternative)
    assert (other.box.x_offset, other.box.y_offset, other.box.width, other.box.height) == (
        90, 70, 20, 20)
    assert 90 <= other.interior_x_px < 110 and 70 <= other.interior_y_px < 90
    assert other.index != result.index
    assert math.isclose(other.confidence, TIED_CONFIDENCE, rel_tol=1e-6)
    assert math.isclose(result.confidence, TIED_CONFIDENCE, rel_tol=1e-6)
    assert 'ambiguous: 2 objects' in response.message
    assert wait_for(lambda: h.received['result'])
    published = h.received['result'][0]
    assert published.ambiguous and published.alternatives[0].index == other.index


def test_an_absent_target_is_not_found_with_why_and_how_sure(harness):
    h = harness(ColourSegmenter())
    h.publish_image(scene_rgb(), stamp_header(3.0))
    response = h.segment('the green ball')
    result = response.result
    assert response.success and not result.found and result.index == -1
    assert "no 'green' in view" in response.message and "no 'green' in view" in result.message
    assert math.isclose(result.confidence, ABSENT_CONFIDENCE, rel_tol=1e-6)
    assert not result.ambiguous and len(result.alternatives) == 0


def test_no_estimate_travels_as_nan(harness):
    h = harness(ColourSegmenter())
    blank = scene_rgb()
    blank[:] = 128
    h.publish_image(blank, stamp_header(4.0))
    response = h.segment('the red square')
    assert response.success and not response.result.found
    assert math.isnan(response.result.confidence)
