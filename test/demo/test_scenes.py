"""The scene generator: deterministic, exact masks, RefCOCO layout readable with pycocotools."""
import json
import pickle

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from hybridgl_ros.demo.expressions import KINDS, referring_expressions
from hybridgl_ros.demo.refcoco_layout import write_dataset
from hybridgl_ros.demo.scenes import COLOURS, HEIGHT_PX, WIDTH_PX, make_scene


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenes')
    summary = write_dataset(out, 12, seed=3)
    return out, summary


def test_same_seed_and_index_give_identical_scene():
    a, b = make_scene(5, 2), make_scene(5, 2)
    assert np.array_equal(a.image_rgb, b.image_rgb)
    assert np.array_equal(a.masks, b.masks)
    assert a.objects == b.objects


def test_other_seed_gives_another_scene():
    assert not np.array_equal(make_scene(5, 2).image_rgb, make_scene(6, 2).image_rgb)


def test_scene_has_two_to_six_disjoint_nonempty_masks():
    for index in range(10):
        scene = make_scene(0, index)
        assert scene.image_rgb.shape == (HEIGHT_PX, WIDTH_PX, 3)
        assert 2 <= len(scene.objects) <= 6
        assert scene.masks.sum(axis=(1, 2)).min() > 1000
        assert scene.masks.sum(axis=0).max() == 1


def test_mask_pixels_have_the_object_colour():
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], np.float32)
    palette /= palette.sum(axis=1, keepdims=True)
    for index in range(6):
        scene = make_scene(1, index)
        for mask, obj in zip(scene.masks, scene.objects):
            mean = scene.image_rgb[mask].astype(np.float32).mean(axis=0)
            chroma = mean / mean.sum()
            assert names[int(np.abs(palette - chroma).sum(axis=1).argmin())] == obj.colour


def test_attribute_expressions_name_a_unique_look():
    for index in range(20):
        objects = make_scene(2, index).objects
        for ref in referring_expressions(objects, np.random.default_rng(0)):
            if ref.kind == 'attribute':
                target = objects[ref.target]
                with_size = target.size in ref.sentences[0].split()

                def look(o, with_size=with_size):
                    return (o.colour, o.shape, o.size if with_size else '')

                assert [look(o) for o in objects].count(look(target)) == 1, ref


def test_spatial_expressions_have_a_look_alike():
    for index in range(20):
        objects = make_scene(2, index).objects
        for ref in referring_expressions(objects, np.random.default_rng(0)):
            if ref.kind == 'spatial':
                target = objects[ref.target]
                twins = [o for o in objects
                         if (o.colour, o.shape) == (target.colour, target.shape)]
                assert len(twins) >= 2


def test_dataset_covers_every_kind(dataset):
    _, summary = dataset
    assert set(summary['kinds']) == set(KINDS)


def test_refcoco_layout_is_readable_with_pycocotools(dataset):
    out, summary = dataset
    coco = COCO(str(out / 'instances.json'))
    with (out / 'refs(unc).p').open('rb') as stream:
        refs = pickle.load(stream)
    assert len(refs) == summary['refs']
    keys = {'ref_id', 'ann_id', 'image_id', 'category_id', 'split', 'sentences', 'sent_ids',
            'file_name'}
    for ref in refs:
        assert keys <= set(ref)
        assert ref['split'] in ('train', 'val', 'testA', 'testB')
        assert [s['sent_id'] for s in ref['sentences']] == ref['sent_ids']
        assert all(s['tokens'] == s['sent'].split() for s in ref['sentences'])
        image = coco.imgs[ref['image_id']]
        assert (out / 'images' / image['file_name']).is_file()
        assert ref['file_name'].startswith(image['file_name'][:-4])
        assert coco.anns[ref['ann_id']]['category_id'] == ref['category_id']


def test_annotation_masks_decode_to_the_scene_masks(dataset):
    out, _ = dataset
    data = json.loads((out / 'instances.json').read_text())
    for ann in data['annotations'][:10]:
        scene = make_scene(3, ann['image_id'] - 1)
        decoded = mask_utils.decode(ann['segmentation']).astype(bool)
        assert np.array_equal(decoded, scene.masks[ann['id'] % 100])
