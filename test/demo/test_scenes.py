"""The scene generator: deterministic, exact masks, RefCOCO layout readable with pycocotools."""
import json
import pickle

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from hybridgl_ros.demo.expressions import KINDS, referring_expressions
from hybridgl_ros.demo.refcoco_layout import write_dataset
from hybridgl_ros.demo.scenes import (
    COLOURS, HEIGHT_PX, STYLES, WIDTH_PX, at_working_size, make_scene)


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


@pytest.mark.parametrize('style', [style for style in STYLES if style != 'shaded'])
def test_plain_styles_are_deterministic_with_exact_masks(style):
    a, b = make_scene(5, 1, style), make_scene(5, 1, style)
    assert np.array_equal(a.image_rgb, b.image_rgb) and a.objects == b.objects
    height, width = a.image_rgb.shape[:2]
    assert a.masks.shape[1:] == (height, width)
    assert a.masks.sum(axis=0).max() == 1 and a.masks.sum(axis=(1, 2)).min() > 500


def test_a_scene_at_the_working_size_is_its_frame_and_masks_downscaled_together():
    from hybridgl_ros.core.resolution import downscale, working_size

    scene = make_scene(5, 1, 'flat')
    small = at_working_size(scene, 256 * 256)
    size = working_size(*scene.image_rgb.shape[:2], 256 * 256)
    assert small.image_rgb.shape[:2] == size and small.masks.shape[1:] == size
    assert np.array_equal(small.image_rgb, downscale(scene.image_rgb, size))
    assert small.objects == scene.objects and small.masks.sum(axis=0).max() == 1
    scale = size[0] * size[1] / scene.masks[0].size
    assert np.allclose(small.masks.sum(axis=(1, 2)), scene.masks.sum(axis=(1, 2)) * scale,
                       rtol=0.1)
    assert at_working_size(scene, 0) is scene


@pytest.mark.parametrize('style', STYLES)
def test_object_scale_sizes_every_object_and_keeps_the_canvas(style):
    own, smaller = make_scene(7, 2, style), make_scene(7, 2, style, object_scale=0.6)
    assert smaller.image_rgb.shape == own.image_rgb.shape
    assert [o.radius_px for o in make_scene(7, 2, style, object_scale=1.0).objects] == [
        o.radius_px for o in own.objects]
    from hybridgl_ros.demo.scenes import RADIUS_RANGE_PX, scaled
    from hybridgl_ros.demo.styles import ISOMETRIC_RADIUS_FRACTION, RADIUS_FRACTION

    fractions = ISOMETRIC_RADIUS_FRACTION if style == 'isometric' else RADIUS_FRACTION
    ranges = RADIUS_RANGE_PX if style == 'shaded' else scaled(
        fractions, min(own.image_rgb.shape[:2]))
    for obj in smaller.objects:
        low, high = ranges[obj.size]
        assert 0.6 * low <= obj.radius_px <= 0.6 * high
    with pytest.raises(ValueError, match='object_scale must be within 0.2-2'):
        make_scene(7, 2, style, object_scale=3.0)


@pytest.mark.parametrize('style', STYLES)
def test_any_angle_turns_each_object_and_keeps_all_else(style):
    own, turned = make_scene(7, 4, style), make_scene(7, 4, style, any_angle=True)
    assert np.array_equal(make_scene(7, 4, style, any_angle=False).image_rgb, own.image_rgb)
    assert turned.image_rgb.shape == own.image_rgb.shape
    assert [(o.shape, o.colour, o.size, o.center_xy, o.radius_px, o.form)
            for o in turned.objects] == [(o.shape, o.colour, o.size, o.center_xy, o.radius_px,
                                          o.form) for o in own.objects]
    turns = [(t.angle_deg - o.angle_deg) for o, t in zip(own.objects, turned.objects)]
    assert all(0.0 <= a < 360.0 for a in turns) and len(set(turns)) == len(turns)
    # each mask is its object's, turned: the same area within the edge pixels
    assert np.allclose(turned.masks.sum((1, 2)), own.masks.sum((1, 2)), rtol=0.12)
    again = make_scene(7, 4, style, any_angle=True)
    assert np.array_equal(again.image_rgb, turned.image_rgb)


def test_any_angle_draws_angles_from_the_whole_circle():
    turns = [t.angle_deg - o.angle_deg for i in range(40)
             for o, t in zip(make_scene(9, i, 'flat').objects,
                             make_scene(9, i, 'flat', any_angle=True).objects)]
    assert np.histogram(turns, bins=4, range=(0, 360))[0].min() > len(turns) / 8


def test_the_held_out_styles_differ_from_the_trained_ones():
    from hybridgl_ros.demo.scenes import HELD_OUT_STYLES, STYLES, TRAINING_STYLES
    from hybridgl_ros.demo.styles import ISOMETRIC_CANVASES, POSTER_CANVASES

    assert set(HELD_OUT_STYLES) <= set(STYLES) and not set(HELD_OUT_STYLES) & set(
        TRAINING_STYLES)
    scene = make_scene(9, 0, 'isometric')
    assert scene.image_rgb.shape[1::-1] in ISOMETRIC_CANVASES
    scenes = (make_scene(9, i, 'isometric') for i in range(20))
    cube = next(m for scene in scenes for o, m in zip(scene.objects, scene.masks)
                if o.shape == 'cube')
    assert cube.sum() > 500
    sizes = {make_scene(9, i, 'poster').image_rgb.shape[1::-1] for i in range(8)}
    assert sizes <= set(POSTER_CANVASES)
    cubes = [o for i in range(20) for o in make_scene(9, i, 'poster').objects
             if o.shape == 'cube']
    assert cubes and all(o.form == 'square' for o in cubes)


def test_the_varied_style_draws_each_rendering_choice_anew_per_scene():
    import cv2

    from hybridgl_ros.demo.styles import VARIED_HUES

    scenes = [make_scene(9, i, 'varied') for i in range(12)]
    assert len({s.image_rgb.shape for s in scenes}) >= 6                      # canvases
    corners = np.array([s.image_rgb[:8, :8].reshape(-1, 3).mean(0) for s in scenes])
    assert np.ptp(corners[:, 0]) > 100                                      # backgrounds
    for scene in scenes:
        assert scene.masks.shape[1:] == scene.image_rgb.shape[:2]
        assert not (scene.masks.sum(0) > 1).any()                           # disjoint
        for obj, mask in zip(scene.objects, scene.masks):
            inside = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            rgb = np.median(scene.image_rgb[inside], axis=0).astype(np.uint8)
            hue = 2.0 * cv2.cvtColor(rgb[None, None], cv2.COLOR_RGB2HSV)[0, 0, 0]
            low, high = VARIED_HUES[obj.colour][0]
            assert low - 6 <= hue <= high + 6 or low - 6 <= hue + 360 <= high + 6, (obj, hue)
    assert make_scene(9, 3, 'varied').image_rgb.tobytes() == scenes[3].image_rgb.tobytes()


def test_the_outlined_style_is_the_varied_scene_with_each_object_outlined_inside():
    import cv2

    from hybridgl_ros.demo.styles import OUTLINE_WIDTHS_PX

    def layer(mask, k):
        """The pixels k - 1 to k px inside the mask's border (k = 1: the border pixels)."""
        def inner(n):
            kernel = np.ones((2 * n + 1, 2 * n + 1), np.uint8)
            return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        return inner(k - 1) & ~inner(k)

    widths, inks = [], []
    for index in range(12):
        varied, outlined = make_scene(9, index, 'varied'), make_scene(9, index, 'outlined')
        assert outlined.objects == varied.objects
        assert np.array_equal(outlined.masks, varied.masks)
        changed = np.abs(outlined.image_rgb.astype(int) - varied.image_rgb).max(axis=2) > 0
        assert not (changed & ~outlined.masks.any(axis=0)).any()   # the background stays
        for mask in outlined.masks:
            assert changed[layer(mask, 1)].mean() > 0.8               # the border is drawn
            assert not changed[layer(mask, 10) | layer(mask, 11)].any()  # the middle is not
            widths.append(max(k for k in range(1, 8) if changed[layer(mask, k)].mean() > 0.5))
        inks.append(np.median(outlined.image_rgb[layer(outlined.masks[0], 1)], axis=0))
    # anti-aliased edges may darken one layer more than the width
    assert OUTLINE_WIDTHS_PX[0] <= min(widths) and max(widths) <= OUTLINE_WIDTHS_PX[1] + 1
    assert len(set(widths)) >= 3                                      # drawn anew per scene
    spreads = [float(np.ptp(ink)) for ink in inks]
    assert min(spreads) < 20 < 40 < max(spreads)       # a grey ink, and an object's darker shade


def test_the_tabletop_style_is_a_varied_scene_on_a_table_in_front_of_a_wall():
    from hybridgl_ros.demo.styles import TABLE_FAR_EDGE

    for index in range(8):
        varied, table = make_scene(9, index, 'varied'), make_scene(9, index, 'tabletop')
        assert table.objects == varied.objects                     # the varied scene's objects
        assert table.masks.shape[1:] == table.image_rgb.shape[:2]
        assert not (table.masks.sum(0) > 1).any()                             # disjoint
        image = table.image_rgb.astype(np.float32)
        background = ~table.masks.any(0)
        rows = [image[y][background[y]].mean(0) for y in range(image.shape[0])
                if background[y].sum() > 20]
        # the table's far edge: one step between neighbouring rows, where the wall ends
        steps = np.abs(np.diff(np.array(rows), axis=0)).max(1)
        assert steps.max() > 5 * np.median(steps) + 2, index
        # the wall above it is the varied style's backdrop: a plain colour with a gradient
        top = int(TABLE_FAR_EDGE[0] * image.shape[0]) - 1
        wall = image[:top][background[:top]]
        assert wall.std(0).max() < 25
    assert make_scene(9, 3, 'tabletop').image_rgb.tobytes() == make_scene(
        9, 3, 'tabletop').image_rgb.tobytes()


def test_an_unknown_style_is_refused():
    with pytest.raises(ValueError, match='style'):
        make_scene(0, 0, 'cartoon')


def test_no_target_expressions_name_nothing_in_the_scene():
    from hybridgl_ros.demo.gref_expressions import general_expressions

    seen = set()
    for index in range(30):
        objects = make_scene(4, index).objects
        looks = {(o.colour, o.shape) for o in objects}
        for ref in general_expressions(objects, 4, index):
            seen.add(ref.kind)
            if ref.kind == 'absent':
                assert ref.targets == ()
                words = ref.sentences[0].split()
                assert (words[-2], words[-1]) not in looks
                if words[-2] not in COLOURS:
                    assert words[-1] not in {o.shape for o in objects}
            if ref.kind == 'absent_position':
                assert ref.targets == ()
                assert all(shape not in sentence for sentence in ref.sentences
                           for shape in {o.shape for o in objects})
            if ref.kind == 'ambiguous':
                assert len(ref.targets) >= 2
                assert len({(objects[t].colour, objects[t].shape) for t in ref.targets}) == 1
    assert {'absent', 'absent_relation', 'absent_position', 'ambiguous', 'attribute'} <= seen


def test_grefcoco_layout_marks_no_target_and_multi_target_refs(dataset):
    out, summary = dataset
    grefs = json.loads((out / 'grefs(unc).json').read_text())
    assert len(grefs) == summary['grefs']['refs']
    kinds = {r['kind'] for r in grefs}
    assert {'absent', 'ambiguous', 'attribute'} <= kinds
    for ref in grefs:
        assert isinstance(ref['ann_id'], list) and isinstance(ref['category_id'], list)
        assert ref['no_target'] == (ref['ann_id'] == [-1])
        if ref['kind'] == 'ambiguous':
            assert len(ref['ann_id']) >= 2
    sent_ids = [s['sent_id'] for r in grefs for s in r['sentences']]
    assert sent_ids == list(range(len(sent_ids)))


def test_shape_expressions_name_one_object_by_its_shape_and_size_alone():
    from hybridgl_ros.demo.gref_expressions import SHAPE_REFS_PER_SCENE, general_expressions

    seen = {'plain': 0, 'sized': 0}
    for index in range(30):
        objects = make_scene(4, index).objects
        refs = [ref for ref in general_expressions(objects, 4, index) if ref.kind == 'shape']
        assert len(refs) <= SHAPE_REFS_PER_SCENE
        for ref in refs:
            (t,) = ref.targets
            target, words = objects[t], ref.sentences[0].split()
            assert words[-1] == target.shape and not set(words) & set(COLOURS)
            same_shape = [o for o in objects if o.shape == target.shape]
            if len(words) == 2:                                   # "the star": the only one
                assert same_shape == [target]
                seen['plain'] += 1
            else:                                                 # "the small star"
                assert words[1] == target.size
                assert [o.size for o in same_shape].count(target.size) == 1
                seen['sized'] += 1
    assert seen['plain'] and seen['sized']


def test_phrased_relations_hold_for_their_target_only_or_for_nothing():
    import re

    from hybridgl_ros.demo.expressions import RELATION_MARGIN_PX, RELATION_TEMPLATES
    from hybridgl_ros.demo.gref_expressions import phrased_relation_expressions

    def side(anchor, obj, place):          # > margin: clearly there; < -margin: clearly not
        dx = anchor.center_xy[0] - obj.center_xy[0]
        dy = anchor.center_xy[1] - obj.center_xy[1]
        return {'left': dx, 'right': -dx, 'top': dy, 'bottom': -dy}[place]

    def named(objects, name):
        return [o for o in objects if name in (o.shape, f'{o.colour} {o.shape}')]

    patterns = [(place, re.compile('^' + t.format(s='(.+)', a='(.+)') + '$'))
                for place, templates in RELATION_TEMPLATES.items() for t in templates]
    seen = {'relation': 0, 'absent_relation': 0, 'coloured target': 0, 'plain anchor': 0,
            'missing anchor': 0}
    for index in range(40):
        objects = make_scene(4, index).objects
        refs = phrased_relation_expressions(objects, np.random.default_rng([4, index, 5]))
        assert len(refs) <= 2 and len({ref.kind for ref in refs}) == len(refs)
        for ref in refs:
            seen[ref.kind] += 1
            for sentence in ref.sentences:
                place, t_name, a_name = next((place, *m.groups()) for place, p in patterns
                                             if (m := p.match(sentence)))
                matches, anchors = named(objects, t_name), named(objects, a_name)
                seen['coloured target'] += ' ' in t_name
                seen['plain anchor'] += ' ' not in a_name
                # never the RefCOCO layout's phrasing (target's shape, anchor's colour and shape)
                assert ' ' in t_name or ' ' not in a_name
                if not anchors:                     # an anchor shape not on the table
                    assert ref.kind == 'absent_relation' and ' ' not in a_name
                    seen['missing anchor'] += 1
                    continue
                (anchor,) = anchors                 # the anchor's name singles it out
                holds = [o for o in matches if side(anchor, o, place) > RELATION_MARGIN_PX]
                assert all(abs(side(anchor, o, place)) > RELATION_MARGIN_PX for o in matches)
                if ref.kind == 'relation':
                    (t,) = ref.targets
                    assert holds == [objects[t]]
                else:
                    assert ref.targets == () and matches and not holds
    assert all(seen.values()), seen
