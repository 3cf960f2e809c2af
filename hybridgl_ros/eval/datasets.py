"""Readers for the evaluation sets of the paper (spec §11) and gRefCOCO, grouped by image.

RefCOCO / RefCOCO+ / RefCOCOg come as ``refs(unc).p`` / ``refs(umd).p`` (a pickle from the
``refer`` toolkit) plus the dataset's ``instances.json`` and the COCO train2014 images. gRefCOCO
(Liu et al., CVPR 2023) comes as ``grefs(unc).json`` (or ``.p``) plus its ``instances.json``:
a ref's ``ann_id`` is a list (several targets), ``[-1]`` for an expression whose target is not
in the image (``no_target``). PhraseCut comes as ``refer_<split>.json`` plus its ``images/``
folder. Every sentence (RefCOCO) or phrase (PhraseCut) is one query; queries are grouped by
image so that the image-side work runs once.
"""
from __future__ import annotations

import json
import logging
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hybridgl_ros.core.errors import ConfigError

_LOG = logging.getLogger(__name__)

#: dataset name -> (folder, refs file, allowed splits)
REFCOCO_SETS = {
    'refcoco': ('refcoco', 'refs(unc).p', ('val', 'testA', 'testB', 'train')),
    'refcoco+': ('refcoco+', 'refs(unc).p', ('val', 'testA', 'testB', 'train')),
    'refcocog': ('refcocog', 'refs(umd).p', ('val', 'test', 'train')),
}
GREFCOCO = ('grefcoco', ('grefs(unc).json', 'grefs(unc).p'), ('val', 'testA', 'testB', 'train'))
PHRASECUT_SPLITS = ('test', 'val', 'miniv', 'train')
DATASETS = tuple(REFCOCO_SETS) + ('grefcoco', 'phrasecut')

#: Where COCO train2014 is looked for under the data root (the refer toolkit's layout first).
COCO_IMAGE_DIRS = ('images/mscoco/images/train2014', 'images/train2014', 'train2014',
                   'coco/train2014', 'mscoco/train2014', 'images')


@dataclass(frozen=True)
class Query:
    """One expression to evaluate.

    Attributes:
        query_id: unique within the dataset split ('<ref_id>:<sent_id>' or PhraseCut's task id).
        text: the expression as written in the dataset.
        ref_id: the ref (RefCOCO) or task (PhraseCut) it belongs to.
        targets: COCO segmentation objects whose union is the ground truth (polygon lists or
            RLE dicts, see :func:`decode_segmentation`); empty for a no-target expression.
        no_target: the expression's target is not in the image (gRefCOCO); the right answer
            is "not found".
        kind: the expression's kind where the dataset says it (generated scenes), else ''.
    """

    query_id: str
    text: str
    ref_id: str
    targets: tuple[Any, ...]
    no_target: bool = False
    kind: str = ''


@dataclass(frozen=True)
class ImageItem:
    """One image and every query on it.

    Attributes:
        image_id: the dataset's image id.
        path: the image file.
        size_hw: (height, width) in pixels from the annotations, or None if not given.
        queries: the queries on this image, in a fixed order.
    """

    image_id: int
    path: Path
    size_hw: tuple[int, int] | None
    queries: tuple[Query, ...]


#: How the ground truth of a query is decoded: 'union' of the target's polygons (standard), or
#: 'exactly_once': only pixels covered by exactly one polygon of a target (the authors' loader,
#: which drops the overlaps of an object's polygons; used in parity mode).
GROUND_TRUTH_RULES = ('union', 'exactly_once')


def decode_segmentation(segmentation: Any, height: int, width: int,
                        rule: str = 'union') -> np.ndarray:
    """Decodes one COCO segmentation object to a mask at image resolution.

    Args:
        segmentation: a list of polygons (each a flat [x0, y0, x1, y1, ...] list in pixels), an
            uncompressed RLE dict (``counts`` a list of run lengths, column-major) or a
            compressed RLE dict (``counts`` a str or bytes).
        height: image height in pixels.
        width: image width in pixels.
        rule: one of GROUND_TRUTH_RULES; it only matters for several overlapping polygons.

    Returns:
        (height, width) bool. Polygons with fewer than 3 points are ignored.
    """
    if rule not in GROUND_TRUTH_RULES:
        raise ConfigError(f'ground-truth rule must be one of {GROUND_TRUTH_RULES}, not {rule!r}')
    with warnings.catch_warnings():
        # pycocotools 2.0.x calls numpy's __array__ the pre-2.0 way: harmless, but noisy.
        warnings.simplefilter('ignore', DeprecationWarning)
        return _decode(segmentation, height, width, rule)


def _decode(segmentation: Any, height: int, width: int, rule: str) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict):
        counts = segmentation.get('counts')
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {'size': list(segmentation['size']), 'counts': counts}
        if tuple(rle['size']) != (height, width):
            raise ValueError(f'RLE size {rle["size"]} differs from the image ({height}, {width})')
        return mask_utils.decode(rle).astype(bool)
    polygons = [[float(v) for v in poly] for poly in segmentation
                if len(poly) >= 6 and len(poly) % 2 == 0]
    if not polygons:
        return np.zeros((height, width), bool)
    rles = mask_utils.frPyObjects(polygons, height, width)
    if rule == 'exactly_once':
        coverage = mask_utils.decode(rles).astype(np.int32).sum(axis=2)  # (H, W) polygon count
        return coverage == 1
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def ground_truth_mask(query: Query, height: int, width: int, rule: str = 'union') -> np.ndarray:
    """The union of a query's target segmentations (each decoded by ``rule``): (H, W) bool."""
    mask = np.zeros((height, width), bool)
    for target in query.targets:
        mask |= decode_segmentation(target, height, width, rule)
    return mask


def ground_truth_rule(parity: str) -> str:
    """'exactly_once' (the authors' loader) in reference parity, else the standard 'union'."""
    return 'exactly_once' if parity == 'reference' else 'union'


def load_dataset(name: str, split: str, data_root: str | Path,
                 image_dir: str | Path | None = None) -> list[ImageItem]:
    """Reads a dataset split as images with their queries, sorted by image id.

    Args:
        name: one of DATASETS.
        split: val/testA/testB (RefCOCO, RefCOCO+), val/test (RefCOCOg), test (PhraseCut).
        data_root: the folder that holds the dataset (see the README for the layout).
        image_dir: the image folder; by default looked for under ``data_root``.

    Raises:
        ConfigError: unknown dataset or split, or a required file is missing.
    """
    root = Path(data_root)
    if name in REFCOCO_SETS:
        return _load_refcoco(name, split, root, image_dir)
    if name == 'grefcoco':
        return _load_grefcoco(split, root, image_dir)
    if name == 'phrasecut':
        return _load_phrasecut(split, root, image_dir)
    raise ConfigError(f'unknown dataset {name!r}; choose one of {", ".join(DATASETS)}')


def _first_existing(candidates: Sequence[Path], what: str) -> Path:
    for path in candidates:
        if path.exists():
            return path
    looked = ', '.join(str(p) for p in candidates)
    raise ConfigError(f'{what} not found; looked for: {looked}')


def _load_refcoco(name: str, split: str, root: Path,
                  image_dir: str | Path | None) -> list[ImageItem]:
    folder, refs_name, splits = REFCOCO_SETS[name]
    if split not in splits:
        raise ConfigError(f'{name} has splits {", ".join(splits)}, not {split!r}')
    refs_path = _first_existing([root / folder / refs_name, root / refs_name], refs_name)
    instances_path = _first_existing([refs_path.parent / 'instances.json'], 'instances.json')
    images_root = Path(image_dir) if image_dir else _first_existing(
        [root / d for d in COCO_IMAGE_DIRS], 'COCO train2014 image folder')
    refs = _read_refs(refs_path)
    with instances_path.open() as stream:
        instances = json.load(stream)
    annotations = {ann['id']: ann for ann in instances['annotations']}
    by_image: dict[int, list[Query]] = {}
    for ref in sorted((r for r in refs if r['split'] == split), key=lambda r: r['ref_id']):
        segmentation = annotations[ref['ann_id']]['segmentation']
        for sentence in ref['sentences']:
            by_image.setdefault(ref['image_id'], []).append(Query(
                query_id=f'{ref["ref_id"]}:{sentence["sent_id"]}', text=sentence['sent'],
                ref_id=str(ref['ref_id']), targets=(segmentation,),
                kind=str(ref.get('kind', ''))))
    return _items(instances, by_image, images_root, name, split, {r['split'] for r in refs})


def _load_grefcoco(split: str, root: Path, image_dir: str | Path | None) -> list[ImageItem]:
    folder, names, splits = GREFCOCO
    if split not in splits:
        raise ConfigError(f'grefcoco has splits {", ".join(splits)}, not {split!r}')
    refs_path = _first_existing([base / n for base in (root / folder, root) for n in names],
                                names[0])
    instances_path = _first_existing([refs_path.parent / 'instances.json'], 'instances.json')
    images_root = Path(image_dir) if image_dir else _first_existing(
        [root / d for d in COCO_IMAGE_DIRS], 'COCO train2014 image folder')
    refs = (json.loads(refs_path.read_text()) if refs_path.suffix == '.json'
            else _read_refs(refs_path))
    with instances_path.open() as stream:
        instances = json.load(stream)
    annotations = {ann['id']: ann for ann in instances['annotations']}
    by_image: dict[int, list[Query]] = {}
    for ref in sorted((r for r in refs if r['split'] == split), key=lambda r: r['ref_id']):
        ann_ids = ref['ann_id'] if isinstance(ref['ann_id'], list) else [ref['ann_id']]
        no_target = bool(ref.get('no_target', False)) or ann_ids == [-1]
        targets = () if no_target else tuple(annotations[a]['segmentation'] for a in ann_ids)
        for sentence in ref['sentences']:
            by_image.setdefault(ref['image_id'], []).append(Query(
                query_id=f'{ref["ref_id"]}:{sentence["sent_id"]}', text=sentence['sent'],
                ref_id=str(ref['ref_id']), targets=targets, no_target=no_target,
                kind=str(ref.get('kind', ''))))
    return _items(instances, by_image, images_root, 'grefcoco', split,
                  {r['split'] for r in refs})


def _items(instances: dict, by_image: dict[int, list[Query]], images_root: Path, name: str,
           split: str, splits_present: set[str]) -> list[ImageItem]:
    if not by_image:  # a run of nothing looked like a run with every figure 0
        raise ConfigError(f'{name} {split}: the data holds no expression of this split (its '
                          f'splits: {", ".join(sorted(splits_present)) or "none"}); hybridgl '
                          'make-scenes --split puts every scene in one split')
    images = {img['id']: img for img in instances['images']}
    items = []
    for image_id in sorted(by_image):
        info = images[image_id]
        items.append(ImageItem(image_id, images_root / info['file_name'],
                               (int(info['height']), int(info['width'])),
                               tuple(by_image[image_id])))
    _LOG.info('%s %s: %d images, %d queries', name, split, len(items),
              sum(len(i.queries) for i in items))
    return items


def _read_refs(path: Path) -> list[dict]:
    """The refer toolkit's pickle (written by Python 2; plain-ASCII text decodes as is)."""
    with path.open('rb') as stream:
        try:
            return pickle.load(stream)
        except UnicodeDecodeError:
            stream.seek(0)
            return pickle.load(stream, encoding='latin1')


def _load_phrasecut(split: str, root: Path, image_dir: str | Path | None) -> list[ImageItem]:
    if split not in PHRASECUT_SPLITS:
        raise ConfigError(f'phrasecut has splits {", ".join(PHRASECUT_SPLITS)}, not {split!r}')
    name = f'refer_{split}.json'
    refer_path = _first_existing([root / name, root / 'VGPhraseCut_v0' / name], name)
    base = refer_path.parent
    images_root = Path(image_dir) if image_dir else _first_existing(
        [base / 'images'], 'PhraseCut image folder')
    with refer_path.open() as stream:
        tasks = json.load(stream)
    sizes = _phrasecut_sizes(base)
    by_image: dict[int, list[Query]] = {}
    for task in sorted(tasks, key=lambda t: str(t['task_id'])):
        instances = tuple(
            [[float(c) for point in polygon for c in point] for polygon in instance]
            for instance in task['Polygons'])
        by_image.setdefault(int(task['image_id']), []).append(Query(
            query_id=str(task['task_id']), text=task['phrase'], ref_id=str(task['task_id']),
            targets=instances))
    return [ImageItem(image_id, images_root / f'{image_id}.jpg', sizes.get(image_id),
                      tuple(by_image[image_id])) for image_id in sorted(by_image)]


def _phrasecut_sizes(base: Path) -> dict[int, tuple[int, int]]:
    """Image sizes from PhraseCut's image_data_split*.json if present (else from the images)."""
    for name in ('image_data_split.json', 'image_data_split3000.json'):
        path = base / name
        if path.is_file():
            with path.open() as stream:
                return {int(i['image_id']): (int(i['height']), int(i['width']))
                        for i in json.load(stream)}
    return {}
