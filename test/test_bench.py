"""``hybridgl bench``'s tracking row with the embedded demo models (a few frames: the figures
themselves come from running the bench, not from a test)."""
from hybridgl_ros.bench import bench_clip, format_track_table, run_track_bench


def test_bench_clip_moves_the_disc_and_gives_its_first_mask():
    images, mask = bench_clip(3)
    assert len(images) == 3 and images[0].shape == (480, 640, 3)
    assert mask.shape == (480, 640) and 7000 < mask.sum() < 8500      # a disc of radius 50
    assert (images[0] != images[1]).any()


def test_tracking_row_times_every_stage_of_every_frame():
    from hybridgl_ros.core.models import load_clip, load_sam
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.core.proposals import SamProposer
    from hybridgl_ros.demo import demo_config

    config = demo_config()
    clip_model, sam = load_clip(config.models, 'cpu'), load_sam(config.models, 'cpu')
    segmenter = HybridGL(config, clip_model=clip_model,
                         proposer=SamProposer(sam, config.proposals))
    row = run_track_bench(segmenter, sam, frames=3)
    assert row['frames'] == 3 and sum(row['statuses'].values()) == 3
    assert row['ms_mean'] > 0 and row['rate_hz'] > 0
    assert set(row['stages_ms']) == {'motion', 'sam', 'appearance'}
    record = {'sam': 'demo', 'clip': 'demo', 'device_name': 'cpu', 'track': row}
    assert '| demo | demo | cpu | 3 |' in format_track_table([record])


def _record(sam, total_ms, encoder_ms, peak):
    query = {'total_ms': total_ms, 'peak_over_idle_mb': peak,
             'stages_ms': {'frame.sam_encoder': encoder_ms, 'frame.proposals': 2 * encoder_ms,
                           'frame.features': 500.0, 'frame.gem': 100.0, 'parse': 5.0,
                           'text': 10.0, 'scoring': 20.0}}
    return {'sam': sam, 'image': [480, 640, 3], 'first_query': query, 'repeat_query': query}


def test_compare_prints_each_stage_before_and_after_for_the_rows_both_runs_have():
    from hybridgl_ros.bench import format_comparison

    before = [_record('vit_b', 30000.0, 20000.0, 2500.0), _record('vit_h', 1.0, 1.0, 1.0)]
    table = format_comparison(before, [_record('vit_b', 10000.0, 5000.0, 900.0)])
    rows = table.splitlines()[2:]
    assert len(rows) == 2                                  # vit_b first and repeat; no vit_h
    assert rows[0].startswith('| vit_b | 640x480 | first | 30.0 → 10.0 | 20.0 → 5.00 |')
    assert rows[0].endswith('| 0.04 → 0.04 | 2500 → 900 |')
    assert '| – | – | – | – |' in rows[1]


def test_topped_up_proposals_drop_sams_masks_in_pieces_before_the_top_up():
    """The CLIP stage still encodes the asked count when the default mode drops split masks."""
    import numpy as np

    from hybridgl_ros.bench import ToppedUpProposer
    from hybridgl_ros.core.proposals import drop_split_masks
    from hybridgl_ros.core.types import Proposals

    masks = np.zeros((2, 60, 80), bool)
    masks[0, 5:15, 5:15] = True
    masks[1, 5:15, 5:15] = masks[1, 40:50, 60:70] = True      # two pieces
    boxes = np.array([[5, 5, 9, 9], [5, 5, 64, 44]])

    class Sam:
        def propose(self, image_rgb):
            return Proposals(masks, boxes, np.ones(2, np.float32))

    for drop, from_sam in ((True, 1), (False, 2)):
        proposer = ToppedUpProposer(Sam(), 6, drop_split=drop)
        found = proposer.propose(None)
        assert len(found) == 6 and proposer.sam_count == from_sam
        assert len(drop_split_masks(found)) == (6 if drop else 5)
