"""Dataset readers: exact ground-truth decoding, grouping by image, splits, PhraseCut."""
import json
import pickle

import numpy as np
import pytest
from eval_data import compressed_rle, rect_mask, rect_polygon, uncompressed_rle, write_refcoco

from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.eval.datasets import (
    Query, decode_segmentation, ground_truth_mask, ground_truth_rule, load_dataset)


def _irregular_mask():
    rng = np.random.default_rng(3)
    return rng.random((17, 23)) > 0.6


def test_polygon_decodes_to_the_pixel_rectangle_it_encloses():
    decoded = decode_segmentation(rect_polygon(3, 11, 5, 19), 17, 23)
    assert np.array_equal(decoded, rect_mask(3, 11, 5, 19, height=17, width=23))


def test_several_polygons_decode_to_their_union():
    polygons = rect_polygon(0, 4, 0, 4) + rect_polygon(10, 15, 12, 20)
    expected = rect_mask(0, 4, 0, 4, 17, 23) | rect_mask(10, 15, 12, 20, 17, 23)
    assert np.array_equal(decode_segmentation(polygons, 17, 23), expected)


def test_the_authors_rule_drops_pixels_covered_by_two_polygons_of_the_object():
    polygons = rect_polygon(0, 8, 0, 10) + rect_polygon(4, 12, 6, 16)
    a, b = rect_mask(0, 8, 0, 10, 17, 23), rect_mask(4, 12, 6, 16, 17, 23)
    assert np.array_equal(decode_segmentation(polygons, 17, 23), a | b)
    assert np.array_equal(decode_segmentation(polygons, 17, 23, 'exactly_once'), a ^ b)


def test_parity_mode_evaluates_against_the_authors_ground_truth():
    assert ground_truth_rule('reference') == 'exactly_once'
    assert ground_truth_rule('default') == 'union'


def test_an_unknown_ground_truth_rule_is_a_config_error():
    with pytest.raises(ConfigError):
        decode_segmentation(rect_polygon(0, 4, 0, 4), 17, 23, 'intersection')


def test_uncompressed_rle_decodes_exactly():
    mask = _irregular_mask()
    assert np.array_equal(decode_segmentation(uncompressed_rle(mask), 17, 23), mask)


def test_compressed_rle_decodes_exactly_from_str_and_bytes_counts():
    mask = _irregular_mask()
    rle = compressed_rle(mask)
    assert np.array_equal(decode_segmentation(rle, 17, 23), mask)
    as_bytes = {'size': rle['size'], 'counts': rle['counts'].encode()}
    assert np.array_equal(decode_segmentation(as_bytes, 17, 23), mask)


def test_degenerate_polygons_decode_to_an_empty_mask():
    decoded = decode_segmentation([[1, 1, 5, 5]], 17, 23)
    assert decoded.shape == (17, 23) and not decoded.any()


def test_rle_of_another_size_is_refused():
    with pytest.raises(ValueError, match='differs'):
        decode_segmentation(compressed_rle(_irregular_mask()), 20, 23)


def test_ground_truth_is_the_union_of_the_targets():
    targets = (rect_polygon(0, 5, 0, 5), compressed_rle(rect_mask(8, 12, 8, 12, 17, 23)))
    query = Query('q', 'two things', 'r', targets)
    expected = rect_mask(0, 5, 0, 5, 17, 23) | rect_mask(8, 12, 8, 12, 17, 23)
    assert np.array_equal(ground_truth_mask(query, 17, 23), expected)


def test_refcoco_reader_groups_every_sentence_of_the_split_by_image(refcoco_root):
    images = load_dataset('refcoco', 'val', refcoco_root)
    refs = pickle.loads((refcoco_root / 'refcoco' / 'refs(unc).p').read_bytes())
    val = [r for r in refs if r['split'] == 'val']
    assert [i.image_id for i in images] == sorted({r['image_id'] for r in val})
    assert sum(len(i.queries) for i in images) == sum(len(r['sentences']) for r in val)
    for item in images:
        assert item.path.is_file() and item.size_hw == (40, 56)
        assert len({q.query_id for q in item.queries}) == len(item.queries)


def test_refcoco_ground_truth_matches_the_annotated_object(tmp_path):
    masks = write_refcoco(tmp_path)
    refs = {r['ref_id']: r for r in pickle.loads((tmp_path / 'refcoco' / 'refs(unc).p')
                                                 .read_bytes())}
    for item in load_dataset('refcoco', 'val', tmp_path):
        for query in item.queries:
            expected = masks[refs[int(query.ref_id)]['ann_id']]
            assert np.array_equal(ground_truth_mask(query, *item.size_hw), expected)


def test_refcocog_reads_the_umd_refs_and_its_test_split(tmp_path):
    write_refcoco(tmp_path, refs_name='refs(umd).p', folder='refcocog')
    refs = pickle.loads((tmp_path / 'refcocog' / 'refs(umd).p').read_bytes())
    for ref in refs:
        ref['split'] = 'test'
    (tmp_path / 'refcocog' / 'refs(umd).p').write_bytes(pickle.dumps(refs, protocol=2))
    images = load_dataset('refcocog', 'test', tmp_path)
    assert sum(len(i.queries) for i in images) == sum(len(r['sentences']) for r in refs)


def test_a_split_the_dataset_does_not_have_is_a_config_error(refcoco_root):
    with pytest.raises(ConfigError, match='testA'):
        load_dataset('refcocog', 'testA', refcoco_root)


def test_missing_image_folder_names_where_it_looked(tmp_path):
    write_refcoco(tmp_path)
    (tmp_path / 'images').rename(tmp_path / 'elsewhere')
    with pytest.raises(ConfigError, match='train2014'):
        load_dataset('refcoco', 'val', tmp_path)
    assert load_dataset('refcoco', 'val', tmp_path,
                        image_dir=tmp_path / 'elsewhere/mscoco/images/train2014')


def test_phrasecut_ground_truth_is_the_union_of_all_instance_polygons(tmp_path):
    (tmp_path / 'images').mkdir()
    task = {'task_id': '7__1', 'image_id': 7, 'phrase': 'two boxes', 'Polygons': [
        [[[2, 3], [10, 3], [10, 9], [2, 9]]],
        [[[12, 1], [20, 1], [20, 5], [12, 5]], [[0, 12], [4, 12], [4, 16], [0, 16]]]]}
    (tmp_path / 'refer_test.json').write_text(json.dumps([task]))
    (tmp_path / 'image_data_split.json').write_text(
        json.dumps([{'image_id': 7, 'height': 17, 'width': 23, 'split': 'test'}]))
    [item] = load_dataset('phrasecut', 'test', tmp_path)
    assert item.path == tmp_path / 'images' / '7.jpg' and item.size_hw == (17, 23)
    [query] = item.queries
    expected = (rect_mask(3, 9, 2, 10, 17, 23) | rect_mask(1, 5, 12, 20, 17, 23)
                | rect_mask(12, 16, 0, 4, 17, 23))
    assert query.text == 'two boxes'
    assert np.array_equal(ground_truth_mask(query, 17, 23), expected)


def test_grefcoco_reader_marks_no_target_and_keeps_every_target(tmp_path):
    from eval_data import write_grefcoco

    masks = write_grefcoco(tmp_path)
    items = load_dataset('grefcoco', 'val', tmp_path)
    assert [i.image_id for i in items] == [100, 101]
    single, multi, empty = items[0].queries
    assert (single.kind, multi.kind, empty.kind) == ('attribute', 'ambiguous', 'absent')
    assert not single.no_target and len(single.targets) == 1
    assert len(multi.targets) == 2 and not multi.no_target
    assert np.array_equal(ground_truth_mask(multi, *items[0].size_hw),
                          masks[100000] | masks[100001])
    assert empty.no_target and empty.targets == ()
    assert not ground_truth_mask(empty, *items[0].size_hw).any()


def test_grefcoco_reader_refuses_an_unknown_split(tmp_path):
    from eval_data import write_grefcoco

    write_grefcoco(tmp_path, images=1)
    with pytest.raises(ConfigError, match='splits'):
        load_dataset('grefcoco', 'testC', tmp_path)


def test_a_split_the_data_does_not_hold_is_refused_naming_the_splits_it_holds(tmp_path):
    """Scenes made with one --split and evaluated on another ran 0 queries and exited 0 with
    every figure 0.00."""
    from eval_data import write_grefcoco

    write_grefcoco(tmp_path, images=1)
    with pytest.raises(ConfigError, match=r'grefcoco testA: the data holds no expression of this '
                                          r'split \(its splits: val\)'):
        load_dataset('grefcoco', 'testA', tmp_path)
