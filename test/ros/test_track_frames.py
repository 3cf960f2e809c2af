"""The frames kept during a first answer: bounded, in order; the overlay's trail."""
import time

import numpy as np

from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.ros.sync import LatestSlot
from hybridgl_ros.ros.track_frames import FrameRecorder, with_trail
from ros_helpers import stamp_header, wait_for


def _frame(value: int):
    return numpy_to_image(np.full((12, 16, 3), value, np.uint8), 'rgb8', stamp_header(value))


def test_recorder_keeps_new_frames_in_order_and_thins_them_beyond_its_bound():
    slot = LatestSlot()
    slot.put(_frame(0))
    with FrameRecorder(slot, max_frames=8) as recorder:
        for value in range(1, 41):
            slot.put(_frame(value))
            assert wait_for(lambda: recorder.after(0) and
                            recorder.after(0)[-1][0] == slot.get().seq, timeout=5.0)
    kept = recorder.after(1)               # frame 0 was there before; seq 1 is frame 0 too
    assert 4 <= len(kept) <= 9
    seqs = [seq for seq, _ in kept]
    assert seqs == sorted(seqs) and seqs[-1] == 41
    assert all(gray.shape == (12, 16) and gray.dtype == np.uint8 for _, gray in kept)
    assert kept[-1][1][0, 0] == 40         # the grey value of the last frame put


def test_recorder_stops_with_its_block():
    slot = LatestSlot()
    with FrameRecorder(slot) as recorder:
        pass
    slot.put(_frame(1))
    time.sleep(0.05)
    assert recorder.after(0) == []


def test_trail_joins_the_centroids_on_a_copy():
    image = np.zeros((40, 40, 3), np.uint8)
    drawn = with_trail(image, [(5.0, 5.0), (30.0, 30.0), (float('nan'), 1.0)])
    assert drawn is not image and drawn.any() and not image.any()
    assert with_trail(image, [(5.0, 5.0)]) is image          # one point: nothing to draw
