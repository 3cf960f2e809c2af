"""The evaluation loop's mechanics, with the stand-in model: grouping, files, shards, resume."""
import json

import pytest
from PIL import Image

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import ConfigError, InvalidInputError, ModelLoadError
from hybridgl_ros.eval.datasets import load_dataset
from hybridgl_ros.eval.merge import merge
from hybridgl_ros.eval.records import ResultsFileError, read_results
from hybridgl_ros.eval.runner import EvalSettings, evaluate, parse_shard, plan

#: Record fields that depend on the clock, not on the method.
TIMING_FIELDS = ('frame_ms', 'query_ms', 'cache')


def _settings(root, out, **kw):
    return EvalSettings(dataset='refcoco', split='val', data_root=root, out_dir=out,
                        progress=False, **kw)


def _results(path):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
            for r in read_results(path)[1]]


def _same_scores(a, b):
    keys = ('metrics', 'queries', 'evaluated', 'skipped', 'skipped_by_reason',
            'planned_queries', 'complete')
    return {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_image_side_work_runs_once_per_image(refcoco_root, tmp_path, stand_in):
    summary = evaluate(_settings(refcoco_root, tmp_path / 'out'), HybridGLConfig(), stand_in)
    images = load_dataset('refcoco', 'val', refcoco_root)
    [model] = stand_in.made
    assert model.prepared == len(images) == 4
    assert model.queried == summary['evaluated'] == sum(len(i.queries) for i in images)


def test_run_writes_results_summary_and_table(refcoco_root, tmp_path, stand_in):
    out = tmp_path / 'out'
    summary = evaluate(_settings(refcoco_root, out), HybridGLConfig(), stand_in)
    header, records, _ = read_results(out / 'results.jsonl')
    assert header['dataset'] == 'refcoco' and len(records) == summary['queries']
    assert json.loads((out / 'summary.json').read_text())['metrics'] == summary['metrics']
    table = (out / 'table.md').read_text()
    assert '| oIoU | HybridGL (paper) | 41.81 |' in table
    assert f'{summary["metrics"]["guided"]["mIoU"]:.2f}' in table


def test_the_report_says_which_ground_truth_each_run_used(refcoco_root, tmp_path, stand_in):
    default = evaluate(_settings(refcoco_root, tmp_path / 'default'), HybridGLConfig(), stand_in)
    parity = evaluate(_settings(refcoco_root, tmp_path / 'parity'),
                      HybridGLConfig(parity='reference'), stand_in)
    assert (default['ground_truth'], parity['ground_truth']) == ('union', 'exactly_once')
    assert 'ground truth: the union' in (tmp_path / 'default' / 'table.md').read_text()
    assert 'exactly one' in (tmp_path / 'parity' / 'table.md').read_text()


def test_limit_takes_the_first_queries_in_image_order(refcoco_root, tmp_path, stand_in):
    evaluate(_settings(refcoco_root, tmp_path / 'out', limit=5), HybridGLConfig(), stand_in)
    records = _results(tmp_path / 'out' / 'results.jsonl')
    first = [q.query_id for i in load_dataset('refcoco', 'val', refcoco_root)
             for q in i.queries][:5]
    assert [r['query_id'] for r in records] == first


def test_shards_partition_the_images():
    with pytest.raises(Exception, match='K/N'):
        parse_shard('0/3')
    assert parse_shard('2/3') == (2, 3)


def test_shards_merged_equal_a_single_run(refcoco_root, tmp_path, stand_in):
    config = HybridGLConfig()
    single = evaluate(_settings(refcoco_root, tmp_path / 'single'), config, stand_in)
    for k in (1, 2, 3):
        evaluate(_settings(refcoco_root, tmp_path / 'shards', shard=(k, 3)), config, stand_in)
    [merged] = merge([tmp_path / 'shards'], tmp_path / 'merged')
    assert _same_scores(merged, single) and merged['complete']
    assert (_results(tmp_path / 'merged' / 'results.jsonl')
            == _results(tmp_path / 'single' / 'results.jsonl'))


def test_merge_of_missing_shards_says_incomplete(refcoco_root, tmp_path, stand_in):
    evaluate(_settings(refcoco_root, tmp_path / 'shards', shard=(1, 2)), HybridGLConfig(),
             stand_in)
    [merged] = merge([tmp_path / 'shards'], tmp_path / 'merged')
    assert not merged['complete'] and merged['queries'] < merged['planned_queries']
    assert 'INCOMPLETE' in (tmp_path / 'merged' / 'table.md').read_text()


def test_resume_after_an_interruption_gives_the_same_totals(refcoco_root, tmp_path, stand_in):
    config = HybridGLConfig()
    single = evaluate(_settings(refcoco_root, tmp_path / 'single'), config, stand_in)
    stand_in.interrupt_at = 7
    with pytest.raises(KeyboardInterrupt):
        evaluate(_settings(refcoco_root, tmp_path / 'run'), config, stand_in)
    assert len(read_results(tmp_path / 'run' / 'results.jsonl')[1]) == 6
    stand_in.interrupt_at = None
    resumed = evaluate(_settings(refcoco_root, tmp_path / 'run', resume=True), config, stand_in)
    assert _same_scores(resumed, single)
    assert stand_in.made[-1].queried == single['queries'] - 6


def test_resume_drops_a_truncated_last_line(refcoco_root, tmp_path, stand_in):
    config = HybridGLConfig()
    single = evaluate(_settings(refcoco_root, tmp_path / 'single'), config, stand_in)
    path = tmp_path / 'run' / 'results.jsonl'
    path.parent.mkdir()
    data = (tmp_path / 'single' / 'results.jsonl').read_bytes()
    path.write_bytes(data[:-25])  # the last record cut mid-line, as by a crash
    resumed = evaluate(_settings(refcoco_root, tmp_path / 'run', resume=True), config, stand_in)
    assert _same_scores(resumed, single)
    assert stand_in.made[-1].queried == 1
    assert _results(path) == _results(tmp_path / 'single' / 'results.jsonl')


def test_existing_results_are_never_overwritten_without_resume(
        refcoco_root, tmp_path, stand_in):
    evaluate(_settings(refcoco_root, tmp_path / 'out', limit=2), HybridGLConfig(), stand_in)
    with pytest.raises(ResultsFileError, match='--resume'):
        evaluate(_settings(refcoco_root, tmp_path / 'out', limit=2), HybridGLConfig(), stand_in)


def test_resume_refuses_a_file_of_another_config(refcoco_root, tmp_path, stand_in):
    evaluate(_settings(refcoco_root, tmp_path / 'out', limit=2), HybridGLConfig(), stand_in)
    other = HybridGLConfig.from_flat({'guidance.use_relation': False})
    with pytest.raises(ResultsFileError, match='config differs'):
        evaluate(_settings(refcoco_root, tmp_path / 'out', limit=2, resume=True), other,
                 stand_in)


def test_an_unreadable_image_is_recorded_and_skipped(refcoco_root, tmp_path, stand_in):
    first = load_dataset('refcoco', 'val', refcoco_root)[0]
    first.path.write_bytes(b'not an image')
    summary = evaluate(_settings(refcoco_root, tmp_path / 'out'), HybridGLConfig(), stand_in)
    skipped = [r for r in read_results(tmp_path / 'out' / 'results.jsonl')[1]
               if r['status'] == 'skipped']
    assert {r['image_id'] for r in skipped} == {first.image_id}
    assert summary['skipped_by_reason'] == {'unreadable image': len(first.queries)}
    assert summary['complete'] and summary['evaluated'] > 0


@pytest.mark.parametrize('error, reason', [(MemoryError('cannot allocate'), 'out of memory'),
                                           (InvalidInputError('too small'), 'invalid image')])
def test_an_image_the_model_cannot_take_is_recorded_and_skipped(refcoco_root, tmp_path,
                                                                stand_in, error, reason):
    stand_in.first_prepare_error = error
    summary = evaluate(_settings(refcoco_root, tmp_path / 'out'), HybridGLConfig(), stand_in)
    first = load_dataset('refcoco', 'val', refcoco_root)[0]
    assert summary['skipped_by_reason'] == {reason: len(first.queries)}
    assert summary['evaluated'] == summary['queries'] - len(first.queries)


def test_an_image_of_another_size_than_annotated_is_skipped(refcoco_root, tmp_path, stand_in):
    first = load_dataset('refcoco', 'val', refcoco_root)[0]
    Image.new('RGB', (30, 20)).save(first.path, format='PNG')
    summary = evaluate(_settings(refcoco_root, tmp_path / 'out'), HybridGLConfig(), stand_in)
    assert summary['skipped_by_reason'] == {'image size mismatch': len(first.queries)}


def test_an_empty_ground_truth_mask_is_recorded_and_skipped(refcoco_root, tmp_path, stand_in):
    instances = refcoco_root / 'refcoco' / 'instances.json'
    coco = json.loads(instances.read_text())
    victim = coco['annotations'][0]
    victim['segmentation'] = []
    instances.write_text(json.dumps(coco))
    summary = evaluate(_settings(refcoco_root, tmp_path / 'out'), HybridGLConfig(), stand_in)
    first = load_dataset('refcoco', 'val', refcoco_root)[0]
    expected = sum(1 for q in first.queries if q.ref_id == str(10 * victim['image_id']))
    assert summary['skipped_by_reason'] == {'empty ground truth': expected}


def test_plan_applies_the_limit_before_sharding(refcoco_root):
    images = load_dataset('refcoco', 'val', refcoco_root)
    whole, total = plan(images, 9, (1, 1))
    parts = [plan(images, 9, (k, 2))[0] for k in (1, 2)]
    assert total == 9 == sum(len(p.queries) for p in whole)
    orders = sorted(o for part in parts for p in part for o, _ in p.queries)
    assert orders == list(range(9))


def test_phrasecut_runs_with_image_sizes_taken_from_the_images(tmp_path, stand_in):
    (tmp_path / 'images').mkdir()
    tasks = []
    for image_id in (3, 4):
        Image.new('RGB', (56, 40), (90, 90, 90)).save(tmp_path / 'images' / f'{image_id}.jpg')
        tasks.append({'task_id': f'{image_id}__1', 'image_id': image_id, 'phrase': 'a box',
                      'Polygons': [[[[4, 4], [20, 4], [20, 18], [4, 18]]]]})
    (tmp_path / 'refer_test.json').write_text(json.dumps(tasks))
    settings = EvalSettings(dataset='phrasecut', split='test', data_root=tmp_path,
                            out_dir=tmp_path / 'out', progress=False)
    summary = evaluate(settings, HybridGLConfig(), stand_in)
    assert summary['evaluated'] == 2 and summary['complete']
    assert '| PhraseCut test |' in (tmp_path / 'out' / 'table.md').read_text()


def test_merging_different_runs_lays_them_side_by_side(refcoco_root, tmp_path, stand_in):
    no_relation = HybridGLConfig.from_flat({'guidance.use_relation': False})
    evaluate(_settings(refcoco_root, tmp_path / 'a'), HybridGLConfig(), stand_in)
    evaluate(_settings(refcoco_root, tmp_path / 'b'), no_relation, stand_in)
    summaries = merge([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'm')
    assert len(summaries) == 2
    assert (tmp_path / 'm' / 'refcoco-val' / 'results.jsonl').is_file()
    assert (tmp_path / 'm' / 'refcoco-val-no-relation' / 'summary.json').is_file()
    table = (tmp_path / 'm' / 'table.md').read_text()
    assert '### Table 1 layout' in table and '| ✓ |  | ✓ | ✓ | this run |' in table


def test_merging_again_into_the_same_out_replaces_the_earlier_merge(refcoco_root, tmp_path,
                                                                    stand_in):
    """README: `hybridgl eval-merge eval_out/* --out eval_out/tables`, run again after adding a
    split, refused its own earlier output (suggesting a --resume eval-merge has not) and read
    it as an input."""
    no_relation = HybridGLConfig.from_flat({'guidance.use_relation': False})
    evaluate(_settings(refcoco_root, tmp_path / 'runs' / 'a'), HybridGLConfig(), stand_in)
    merge([tmp_path / 'runs' / 'a'], tmp_path / 'runs' / 'tables')
    evaluate(_settings(refcoco_root, tmp_path / 'runs' / 'b'), no_relation, stand_in)
    runs = sorted((tmp_path / 'runs').iterdir())                  # the shell's runs/*
    summaries = merge(runs, tmp_path / 'runs' / 'tables')
    assert len(summaries) == 2                                    # a and b, not the tables
    # a run's own results are never overwritten
    with pytest.raises(ConfigError, match="a run's results, not an earlier eval-merge output"):
        merge([tmp_path / 'runs' / 'b'], tmp_path / 'runs' / 'a')


def test_a_model_that_fails_to_load_leaves_no_results_file(refcoco_root, tmp_path):
    def broken(config):
        raise ModelLoadError('sam_vit_h_4b8939.pth not found')

    with pytest.raises(ModelLoadError):
        evaluate(_settings(refcoco_root, tmp_path / 'out'), HybridGLConfig(), broken)
    assert not (tmp_path / 'out' / 'results.jsonl').exists()
