"""Writes generated scenes in the RefCOCO and gRefCOCO layouts, so the evaluator reads them like
the real data.

Layout of ``DIR`` (RefCOCO's ``refcoco/`` folder, gRefCOCO's ``grefcoco/`` folder and the COCO
images in one)::

    DIR/instances.json     COCO: images, annotations (RLE segmentation), categories
    DIR/refs(unc).p        pickle: list of refs, RefCOCO's keys (single-target expressions)
    DIR/grefs(unc).json    gRefCOCO: every expression, no-target and multi-target ones too
    DIR/images/COCO_train2014_000000000001.jpg ...

Each ref is ``{'ref_id', 'ann_id', 'image_id', 'category_id', 'split', 'sentences', 'sent_ids',
'file_name', 'kind'}``; a sentence is ``{'sent', 'raw', 'tokens', 'sent_id', 'kind'}``. As in
RefCOCO, ``file_name`` is the image's name with ``_<ann_id>`` appended; the image itself is the
``file_name`` of ``instances.json``. ``kind`` (one of ``expressions.KINDS``) is an addition.
A gRefCOCO ref has the same keys, but ``ann_id`` and ``category_id`` are lists (several
targets for a multi-target expression) and a no-target expression has ``ann_id == [-1]``,
``category_id == [-1]`` and ``no_target == True``, as gRefCOCO marks them; ``kind`` is also one
of ``expressions.NO_TARGET_KINDS`` and ``MULTI_TARGET_KINDS`` there.
Splits are per image: indices 0-6 of every 10 train, 7 val, 8 testA, 9 testB (or one split for
every image).
"""
from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from hybridgl_ros.demo.expressions import scene_expressions
from hybridgl_ros.demo.gref_expressions import GeneralRef, general_expressions
from hybridgl_ros.demo.scenes import SHAPES, Scene, make_scene

LOGGER = logging.getLogger(__name__)
REFS_FILE = 'refs(unc).p'
GREFS_FILE = 'grefs(unc).json'
INSTANCES_FILE = 'instances.json'
IMAGES_DIR = 'images'
_SPLITS = ('train',) * 7 + ('val', 'testA', 'testB')


def category_id(shape: str) -> int:
    """COCO category id (1-based) of a shape name."""
    return SHAPES.index(shape) + 1


def image_file_name(image_id: int) -> str:
    """COCO train2014-style file name of an image."""
    return f'COCO_train2014_{image_id:012d}.jpg'


def write_dataset(out_dir: str | Path, count: int, seed: int, jpeg_quality: int = 95,
                  style: str = 'shaded', split: str = '', object_scale: float = 1.0,
                  any_angle: bool = False) -> dict:
    """Generates ``count`` scenes of series ``seed`` and writes them in the RefCOCO and
    gRefCOCO layouts.

    Args:
        style: the rendering style (``scenes.STYLES``).
        split: put every image in this split; '' = 7 train, 1 val, 1 testA, 1 testB of 10.
        object_scale: every object's size times this (``scenes.make_scene``).
        any_angle: every object at an angle from the whole circle (``scenes.make_scene``).

    Returns:
        A summary: ``{'images': n, 'annotations': n, 'refs': n, 'sentences': n,
        'kinds': {kind: sentences}, 'grefs': {...the same for gRefCOCO...}}``.
    """
    out = Path(out_dir)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    variant = '' if object_scale == 1.0 else f', objects at {object_scale:g} times their size'
    variant += ', objects at any angle' if any_angle else ''
    coco = {'info': {'description': f'hybridgl_ros demo scenes, seed {seed}, style {style}'
                                    f'{variant}'},
            'images': [], 'annotations': [], 'categories': [
                {'id': category_id(s), 'name': s, 'supercategory': 'toy'} for s in SHAPES]}
    refs: list[dict] = []
    grefs: list[dict] = []
    sent_count = 0
    for index in range(count):
        scene = make_scene(seed, index, style, object_scale, any_angle)
        image_id = index + 1
        name = image_file_name(image_id)
        cv2.imwrite(str(out / IMAGES_DIR / name), scene.image_rgb[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        height, width = scene.image_rgb.shape[:2]
        coco['images'].append({'id': image_id, 'file_name': name, 'width': width,
                               'height': height})
        ann_ids = _add_annotations(coco['annotations'], scene, image_id)
        image_split = split or _SPLITS[index % 10]
        for ref in scene_expressions(scene.objects, seed, index):
            refs.append(_ref_record(ref, len(refs), ann_ids[ref.target], image_id,
                                    scene.objects[ref.target].shape, image_split,
                                    sent_count))
            sent_count += len(ref.sentences)
        for ref in general_expressions(scene.objects, seed, index):
            grefs.append(_gref_record(ref, grefs, ann_ids, image_id, scene, image_split))
    (out / INSTANCES_FILE).write_text(json.dumps(coco))
    with (out / REFS_FILE).open('wb') as stream:
        pickle.dump(refs, stream, protocol=2)
    (out / GREFS_FILE).write_text(json.dumps(grefs))
    summary = summarize(coco, refs)
    summary['grefs'] = summarize(coco, grefs)
    LOGGER.info('wrote %s: %s', out, summary)
    return summary


def _add_annotations(annotations: list[dict], scene: Scene, image_id: int) -> list[int]:
    ids = []
    for k, (mask, obj) in enumerate(zip(scene.masks, scene.objects)):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle['counts'] = rle['counts'].decode('ascii')
        ann_id = image_id * 100 + k
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        annotations.append({
            'id': ann_id, 'image_id': image_id, 'category_id': category_id(obj.shape),
            'segmentation': rle, 'area': float(mask.sum()), 'bbox': [x, y, w, h],
            'iscrowd': 0, 'attributes': {'colour': obj.colour, 'size': obj.size}})
        ids.append(ann_id)
    return ids


def _sentences(ref, first_sent_id: int) -> list[dict]:
    return [{'tokens': text.split(), 'raw': text, 'sent_id': first_sent_id + k, 'sent': text,
             'kind': ref.kind} for k, text in enumerate(ref.sentences)]


def _ref_record(ref, ref_id: int, ann_id: int, image_id: int, shape: str, split: str,
                first_sent_id: int) -> dict:
    sentences = _sentences(ref, first_sent_id)
    return {'sent_ids': [s['sent_id'] for s in sentences],
            'file_name': f'{image_file_name(image_id)[:-4]}_{ann_id}.jpg',
            'ann_id': ann_id, 'ref_id': ref_id, 'image_id': image_id, 'split': split,
            'sentences': sentences, 'category_id': category_id(shape), 'kind': ref.kind}


def _gref_record(ref: GeneralRef, grefs: list[dict], ann_ids: list[int], image_id: int,
                 scene: Scene, split: str) -> dict:
    """A gRefCOCO ref: ``ann_id`` and ``category_id`` lists, ``[-1]`` and ``no_target`` for
    an expression whose target is not in the image."""
    first_sent_id = grefs[-1]['sent_ids'][-1] + 1 if grefs else 0
    sentences = _sentences(ref, first_sent_id)
    targets = [ann_ids[t] for t in ref.targets] or [-1]
    return {'sent_ids': [s['sent_id'] for s in sentences],
            'file_name': f'{image_file_name(image_id)[:-4]}_{targets[0]}.jpg',
            'ann_id': targets, 'ref_id': len(grefs), 'image_id': image_id, 'split': split,
            'sentences': sentences, 'no_target': not ref.targets, 'kind': ref.kind,
            'category_id': [category_id(scene.objects[t].shape) for t in ref.targets] or [-1]}


def summarize(coco: dict, refs: list[dict]) -> dict:
    """Counts of images, annotations, refs, sentences and sentences per kind."""
    kinds: dict[str, int] = {}
    for ref in refs:
        kinds[ref['kind']] = kinds.get(ref['kind'], 0) + len(ref['sentences'])
    return {'images': len(coco['images']), 'annotations': len(coco['annotations']),
            'refs': len(refs), 'sentences': sum(len(r['sentences']) for r in refs),
            'kinds': dict(sorted(kinds.items()))}
