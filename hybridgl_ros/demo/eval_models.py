"""Held-out measurements of the demo models: SAM proposal recall, CLIP word accuracy."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hybridgl_ros.core.config import ProposalConfig
from hybridgl_ros.demo.scenes import at_working_size, make_scene

LOGGER = logging.getLogger(__name__)


def write_json(path: Path, values: dict) -> None:
    """Writes ``values`` as indented JSON."""
    path.write_text(json.dumps(values, indent=1, sort_keys=True) + '\n')


def best_ious(proposals: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(K,) best IoU of each ground-truth mask (K, H, W) among proposals (N, H, W), bool."""
    if len(proposals) == 0:
        return np.zeros(len(masks))
    p = proposals.reshape(len(proposals), -1).astype(np.float32)
    g = masks.reshape(len(masks), -1).astype(np.float32)
    inter = g @ p.T                                                  # (K, N)
    union = g.sum(1)[:, None] + p.sum(1)[None, :] - inter
    return (inter / np.maximum(union, 1.0)).max(axis=1)


def evaluate_sam(sam, seed: int, count: int,
                 config: ProposalConfig = ProposalConfig().for_mode(reference=True),
                 style: str = 'shaded', object_scale: float = 1.0) -> dict:
    """Proposal recall of the stock ``SamAutomaticMaskGenerator`` (spec §3 settings) and the
    one-point mask IoU (a point at each object's most interior pixel), on ``count`` scenes of a
    rendering style, every object's size times ``object_scale``."""
    import cv2
    import torch
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor

    generator = SamAutomaticMaskGenerator(sam, output_mode='binary_mask',
                                          **config.generator_settings(sam.image_encoder.img_size))
    predictor = SamPredictor(sam)
    ious, point_ious, proposal_counts, seconds = [], [], [], 0.0
    with torch.inference_mode():
        for index in range(count):
            scene = make_scene(seed, index, style, object_scale)
            start = time.time()
            records = generator.generate(scene.image_rgb)
            seconds += time.time() - start
            proposals = np.stack([r['segmentation'] for r in records]) if records else \
                np.zeros((0,) + scene.masks.shape[1:], bool)
            proposal_counts.append(len(records))
            ious.extend(best_ious(proposals, scene.masks))
            predictor.set_image(scene.image_rgb)
            for mask in scene.masks:
                inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
                y, x = np.unravel_index(int(inside.argmax()), inside.shape)
                pred, _, _ = predictor.predict(np.array([[x, y]]), np.array([1]),
                                               multimask_output=False)
                point_ious.append(best_ious(pred, mask[None])[0])
    ious = np.asarray(ious)
    return {'scenes': count, 'objects': int(len(ious)),
            'recall_iou_0.8': round(float((ious >= 0.8).mean()), 4),
            'recall_iou_0.5': round(float((ious >= 0.5).mean()), 4),
            'mean_best_iou': round(float(ious.mean()), 4),
            'one_point_miou': round(float(np.mean(point_ious)), 4),
            'proposals_per_image': round(float(np.mean(proposal_counts)), 2),
            'generator_seconds_per_image': round(seconds / max(1, count), 3),
            'generator_settings': asdict(config)}


def load_demo_clip(config_path: Path, weights_path: Path):
    """The CLIP of a config JSON and weights file through the core's loader (eval, CPU)."""
    from hybridgl_ros.core.models import build_clip, load_clip_weights

    model, _ = build_clip(str(config_path))
    load_clip_weights(model, Path(weights_path))
    return model.eval()


def evaluate_clip(config_path: Path, weights_path: Path, seed: int, count: int,
                  style: str = 'shaded', working_pixels: int = 0, object_scale: float = 1.0
                  ) -> dict:
    """Word accuracy of the CLIP on ground-truth regions of ``count`` held-out scenes of a
    rendering style.

    ``*_in_context``: the right word among all words of its kind in an otherwise true caption
    ("the {colour} {true shape}", "the {true colour} {shape}", "the {size} {true colour}
    {true shape}"); ``*_word``: the word alone ("red", "the ball", "small"). ``pick_*``: the
    referred object is the best-matching region of its scene (objects and table), text = the
    expression; ``pick_shape_only``/``pick_colour_only``: "the star" / "the green one" for
    objects unique in that respect. ``working_pixels``: each frame downscaled to this many
    pixels first, as the pipeline does (0: the full frame); ``object_scale``: every object's
    size times this.
    """
    import torch

    from hybridgl_ros.core.models import text_tokenizer
    from hybridgl_ros.demo.clip_data import scene_regions
    from hybridgl_ros.demo.expressions import scene_expressions
    from hybridgl_ros.demo.scenes import COLOURS, SHAPES, SIZES
    from hybridgl_ros.demo.train_clip import make_encoder

    model = load_demo_clip(config_path, weights_path)
    encoder, tokenizer = make_encoder(model), text_tokenizer(model)
    cache: dict[str, torch.Tensor] = {}

    def embed(texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            with torch.no_grad():
                feats = model.encode_text(tokenizer(missing))
            feats = torch.nn.functional.normalize(feats, dim=-1)
            cache.update(zip(missing, feats))
        return torch.stack([cache[t] for t in texts])

    hits: dict[str, list[bool]] = {}

    def record(name: str, region_f: torch.Tensor, texts: list[str], right: int) -> None:
        hits.setdefault(name, []).append(int((region_f @ embed(texts).T).argmax()) == right)

    for index in range(count):
        scene = at_working_size(make_scene(seed, index, style, object_scale), working_pixels)
        feats = torch.nn.functional.normalize(
            encoder.encode(scene.image_rgb, scene_regions(scene)), dim=-1)   # (R, D)
        for k, obj in enumerate(scene.objects):
            f = feats[k]
            record('colour_in_context', f, [f'the {c} {obj.shape}' for c in COLOURS],
                   list(COLOURS).index(obj.colour))
            record('shape_in_context', f, [f'the {obj.colour} {s}' for s in SHAPES],
                   SHAPES.index(obj.shape))
            record('size_in_context', f, [f'the {z} {obj.colour} {obj.shape}' for z in SIZES],
                   SIZES.index(obj.size))
            record('colour_word', f, list(COLOURS), list(COLOURS).index(obj.colour))
            record('shape_word', f, [f'the {s}' for s in SHAPES], SHAPES.index(obj.shape))
            record('size_word', f, list(SIZES), SIZES.index(obj.size))
            if [o.shape for o in scene.objects].count(obj.shape) == 1:
                record('pick_shape_only', feats, [f'the {obj.shape}'], k)
            if [o.colour for o in scene.objects].count(obj.colour) == 1:
                record('pick_colour_only', feats, [f'the {obj.colour} one'], k)
        for ref in scene_expressions(scene.objects, seed, index):
            for sentence in ref.sentences:
                hits.setdefault(f'pick_{ref.kind}', []).append(
                    int((feats @ embed([sentence])[0]).argmax()) == ref.target)
    return {'scenes': count, **{name: round(float(np.mean(v)), 4) for name, v in hits.items()},
            'counts': {name: len(v) for name, v in hits.items()}}
