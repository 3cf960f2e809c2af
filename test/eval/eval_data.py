"""Evaluation test data made in code: a small RefCOCO-layout dataset and a stand-in model.

The stand-in implements ``prepare(image) -> Frame`` / ``query(frame, text) -> Segmentation``
with the real dataclasses; it exists to test the runner's mechanics (grouping, shards, resume,
cache), not the method. The method itself runs in ``test_end_to_end.py``.
"""

import json
import pickle
import zlib

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.pipeline import masks_on_device
from hybridgl_ros.core.types import Frame, ParsedExpression, Proposals, Segmentation

HEIGHT, WIDTH = 40, 56


def rect_mask(y0, y1, x0, x1, height=HEIGHT, width=WIDTH):
    """(height, width) bool, True on rows y0:y1 and columns x0:x1."""
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rect_polygon(y0, y1, x0, x1):
    """COCO polygon of the pixel rectangle rows y0:y1, columns x0:x1."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def uncompressed_rle(mask):
    """COCO uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {'size': [int(mask.shape[0]), int(mask.shape[1])], 'counts': counts}


def compressed_rle(mask):
    """COCO compressed RLE with str counts, as in a JSON file."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': rle['size'], 'counts': rle['counts'].decode('ascii')}


#: Objects per image: (ann id offset, mask rows/cols, encoding). Encodings cycle over the
#: three COCO forms so that every loader path is used.
OBJECTS = ((0, (4, 20, 4, 24), 'polygon'), (1, (22, 36, 30, 52), 'rle'),
           (2, (6, 18, 34, 50), 'rle-compressed'))
SPLITS = ('val', 'val', 'testA', 'val', 'testB', 'val')


def _segmentation(mask, encoding, box):
    if encoding == 'polygon':
        return rect_polygon(*box)
    return uncompressed_rle(mask) if encoding == 'rle' else compressed_rle(mask)


def write_refcoco(root, images=6, refs_name='refs(unc).p', folder='refcoco'):
    """Writes ``images`` images in the refer toolkit's layout; returns the GT masks by ann id.

    Image i has three objects; refs on it point at each object with 1-3 sentences; image
    splits follow SPLITS. Images are PNG-encoded losslessly under COCO's .jpg names.
    """
    data = root / folder
    image_dir = root / 'images' / 'mscoco' / 'images' / 'train2014'
    data.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    coco = {'images': [], 'annotations': [], 'categories': [{'id': 1, 'name': 'thing'}]}
    refs, masks, sent_id = [], {}, 0
    for i in range(images):
        image_id = 100 + i
        name = f'COCO_train2014_{image_id:012d}.jpg'
        pixels = np.full((HEIGHT, WIDTH, 3), 90 + 10 * i, np.uint8)
        for offset, box, encoding in OBJECTS:
            ann_id = 1000 * image_id + offset
            mask = rect_mask(*box)
            pixels[mask] = (200 - 60 * offset, 40 + 70 * offset, 30 * i)
            masks[ann_id] = mask
            coco['annotations'].append({
                'id': ann_id, 'image_id': image_id, 'category_id': 1, 'iscrowd': 0,
                'segmentation': _segmentation(mask, encoding, box)})
            sentences = [{'sent_id': sent_id + k, 'sent': f'thing {offset} number {k} in {i}'}
                         for k in range(1 + (i + offset) % 3)]
            sent_id += len(sentences)
            refs.append({'ref_id': 10 * image_id + offset, 'ann_id': ann_id,
                         'image_id': image_id, 'split': SPLITS[i % len(SPLITS)],
                         'file_name': f'{name[:-4]}_{ann_id}.jpg', 'sentences': sentences,
                         'sent_ids': [s['sent_id'] for s in sentences], 'category_id': 1})
        Image.fromarray(pixels).save(image_dir / name, format='PNG')
        coco['images'].append({'id': image_id, 'file_name': name, 'height': HEIGHT,
                               'width': WIDTH})
    (data / 'instances.json').write_text(json.dumps(coco))
    with (data / refs_name).open('wb') as stream:
        pickle.dump(refs, stream, protocol=2)
    return masks


def _grid_proposals(height, width):
    """Six proposals: four quadrants, the centre block and the full frame."""
    h2, w2 = height // 2, width // 2
    boxes = [(0, h2, 0, w2), (0, h2, w2, width), (h2, height, 0, w2), (h2, height, w2, width),
             (height // 4, 3 * height // 4, width // 4, 3 * width // 4), (0, height, 0, width)]
    masks = np.stack([rect_mask(*b, height=height, width=width) for b in boxes])
    boxes_xywh = np.asarray([(x0, y0, x1 - x0, y1 - y0) for y0, y1, x0, x1 in boxes], np.int64)
    return Proposals(masks, boxes_xywh, np.linspace(0.9, 0.5, len(boxes), dtype=np.float32))


class StandInModel:
    """prepare/query with the real dataclasses; deterministic picks from a CRC of the text.

    Counts its calls; raises KeyboardInterrupt on query number ``interrupt_at`` (1-based) and
    ``first_prepare_error`` (an exception instance), if given, on the first prepare.
    ``use_relation`` off makes the guided pick equal the pure one (so ablations are visible).
    """

    device = 'cpu'

    def __init__(self, config, interrupt_at=None, first_prepare_error=None):
        self.config = config
        self.interrupt_at = interrupt_at
        self.first_prepare_error = first_prepare_error
        self.prepared = 0
        self.queried = 0

    def prepare(self, image_rgb):
        import torch

        self.prepared += 1
        if self.first_prepare_error is not None and self.prepared == 1:
            raise self.first_prepare_error
        height, width = image_rgb.shape[:2]
        proposals = _grid_proposals(height, width)
        means = [image_rgb[m].mean(axis=0) for m in proposals.masks]
        features = torch.tensor(np.asarray(means, np.float32))  # (N, 3)
        gem = torch.ones((4, 3)) if self.config.guidance.use_coherence else None
        return Frame(image_size=(height, width), proposals=proposals, mask_features=features,
                     gem_tokens=gem, gem_grid=(2, 2) if gem is not None else (0, 0),
                     mask_tensor=masks_on_device(proposals.masks, 'cpu'))

    def query(self, frame, text, explain=False):
        self.queried += 1
        if self.interrupt_at is not None and self.queried == self.interrupt_at:
            raise KeyboardInterrupt
        if not text.strip():
            raise InvalidInputError('the expression is empty')
        n = len(frame.proposals)
        code = zlib.crc32(text.encode()) + int(frame.mask_features.sum())
        pure = code % n
        index = pure if not self.config.guidance.use_relation else (code // n) % n
        mask = frame.proposals.masks[index]
        return Segmentation(
            found=True, text=text, mask=mask, box_xywh=tuple(frame.proposals.boxes_xywh[index]),
            score=1.0, centroid_xy=(0.0, 0.0), interior_xy=(0, 0), index=index,
            pure_index=pure, matching_probs=np.full(n, 1.0 / n, np.float32),
            spatial_scores=np.zeros(n, np.float32), candidate_indices=(index,),
            candidate_scores=(1.0,), parse=ParsedExpression(text, text), timings_ms={})


def write_grefcoco(root, images=2):
    """Writes a tiny gRefCOCO (``grefcoco/grefs(unc).json``) on the images of
    :func:`write_refcoco` (written too): per image one single-target ref, one multi-target ref
    (objects 0 and 1) and one no-target ref (``ann_id`` [-1], ``no_target``), all in 'val'.

    Returns:
        The GT masks by ann id.
    """
    masks = write_refcoco(root, images)
    instances = json.loads((root / 'refcoco' / 'instances.json').read_text())
    data = root / 'grefcoco'
    data.mkdir(parents=True, exist_ok=True)
    (data / 'instances.json').write_text(json.dumps(instances))
    refs, sent_id = [], 0
    for i in range(images):
        image_id = 100 + i
        for k, (targets, kind) in enumerate((([0], 'attribute'), ([0, 1], 'ambiguous'),
                                             ([], 'absent'))):
            ann_ids = [1000 * image_id + t for t in targets] or [-1]
            sentences = [{'sent_id': sent_id, 'sent': f'{kind} {k} in {i}', 'raw': 'x',
                          'tokens': [kind]}]
            sent_id += 1
            refs.append({'ref_id': 10 * image_id + k, 'ann_id': ann_ids, 'image_id': image_id,
                         'split': 'val', 'sentences': sentences, 'kind': kind,
                         'sent_ids': [s['sent_id'] for s in sentences],
                         'category_id': [1] * len(targets) or [-1],
                         'no_target': not targets})
    (data / 'grefs(unc).json').write_text(json.dumps(refs))
    return masks
