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
