"""Trains the tiny demo SAM on generated scenes with point prompts (CPU, seeded).

The network is a ``segment_anything`` ``Sam`` built from :data:`DEMO_SAM_ARCH`. Each step takes a
few fresh scenes, feeds them exactly as ``SamPredictor`` does (``ResizeLongestSide``, then
``Sam.preprocess``) and prompts the decoder with single foreground points: some on objects, some
anywhere (a point on the table asks for the table, as SAM would segment it). All four decoder
outputs (single and multi-mask) learn the region under the point: BCE + dice at the decoder's
low-resolution output against each cell's covered fraction, plus BCE at full-resolution points
near the region's boundary, read from the low-res logits where ``SamPredictor`` upsamples them
(sharper masks at 640x480). The IoU head learns the IoU of its own masks, which
``SamAutomaticMaskGenerator`` filters on.

Five stages (``train_demo_sam``): the first on shaded 640x480 scenes from scratch, the second
fine-tunes it on fresh shaded and flat scenes (plain backgrounds, flat fills, squares, other
canvases), so that the proposals do not know one renderer only, the third on fresh scenes half
of which have their objects drawn at other sizes (``recipe.OBJECT_SCALES``), the fourth on
fresh scenes half of which are in the ``varied`` style (every rendering choice drawn anew per
scene: ``demo.styles``), the fifth on fresh scenes half of which are in the ``tabletop`` style
(a ``varied`` scene on a table seen at an angle in front of a wall).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hybridgl_ros.core.sam_arch import SamArchitecture, build_sam
from hybridgl_ros.demo.recipe import (
    OBJECT_SCALES, SCALED_SHARE, ScaledScenes, TrainingRecipe, low_res_shares, train_in_stages)
from hybridgl_ros.demo.scenes import make_scene

LOGGER = logging.getLogger(__name__)

DEMO_SAM_ARCH = SamArchitecture(
    img_size=256, patch_size=16, encoder_embed_dim=128, encoder_depth=4, encoder_num_heads=4,
    encoder_global_attn_indexes=(), window_size=0, use_rel_pos=False, mlp_ratio=4.0,
    prompt_embed_dim=64, mask_in_chans=8, decoder_depth=2, decoder_num_heads=4,
    decoder_mlp_dim=256, iou_head_depth=3, iou_head_hidden_dim=64)
#: Scene series used for training; evaluation uses other series.
TRAIN_SCENE_SEED = 1
EVAL_SCENE_SEED = 1001
#: Steps of the second stage (:meth:`SamRecipe.fine_tune`).
FINE_TUNE_STEPS = 3000


@dataclass(frozen=True)
class SamRecipe(ScaledScenes, TrainingRecipe):
    """How the demo SAM is trained. The defaults are the first stage (shaded scenes, from
    scratch: the weights shipped before issue 11); :meth:`fine_tune` is the second,
    :meth:`at_other_sizes` the third, :meth:`other_renderers` the fourth, :meth:`tabletop` the
    fifth, which made today's weights."""

    steps: int = 6000
    images_per_step: int = 1
    object_prompts: int = 12
    random_prompts: int = 3
    points_per_mask: int = 256
    edge_loss_weight: float = 0.5
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    iou_loss_weight: float = 1.0
    seed: int = 0
    arch: SamArchitecture = DEMO_SAM_ARCH
    eval_scenes: int = 40
    threads: int = 1
    checkpoint_every: int = 250
    """Also write the weights every this many steps (0 = only at the end)."""
    styles: str = 'shaded'
    """Rendering styles of the training scenes, in turn (comma-separated; a style named twice
    gets twice the scenes)."""
    first_scene: int = 0
    """Index of the first training scene of the series (a later stage starts past the scenes
    an earlier one saw)."""
    init_weights: str = ''
    """Start from these SAM weights (a ``sam.pth`` of the same architecture) instead of a random
    initialisation ('' = from scratch)."""
    eval_styles: str = 'shaded,flat,poster'

    @classmethod
    def fine_tune(cls, init_weights: str) -> 'SamRecipe':
        """The second stage: from the first stage's (shaded-only) weights, on fresh shaded and
        flat scenes (flat twice as often: plain backgrounds, flat fills, squares, other canvases)
        at a lower learning rate."""
        return cls(steps=FINE_TUNE_STEPS, lr=3e-4, warmup_steps=50, styles='shaded,flat,flat',
                   first_scene=cls().after_scenes, init_weights=init_weights)

    @classmethod
    def at_other_sizes(cls, init_weights: str) -> 'SamRecipe':
        """The third stage: the second stage's recipe from its weights, on fresh scenes, half
        of them with every object's size scaled (``OBJECT_SCALES``): the first two stages saw
        one size range only, and with objects at 0.6 times it recall@0.5 fell to 0.60 (flat,
        20 held-out scenes)."""
        second = cls.fine_tune(init_weights)
        return replace(second, first_scene=second.after_scenes, object_scales=OBJECT_SCALES,
                       scaled_share=SCALED_SHARE)

    @classmethod
    def other_renderers(cls, init_weights: str) -> 'SamRecipe':
        """The fourth stage: the third stage's recipe from its weights, on fresh scenes, half
        of them in the ``varied`` style (``demo.styles``: canvas, background, palette,
        proportions and edges drawn anew per scene), a quarter each shaded and flat: the first
        three stages knew two renderers."""
        third = cls.at_other_sizes(init_weights)
        return replace(third, styles='varied,shaded,varied,flat', first_scene=third.after_scenes)

    @classmethod
    def tabletop(cls, init_weights: str) -> 'SamRecipe':
        """The fifth stage: the fourth stage's recipe from its weights, on fresh scenes (after
        the ones a fifth stage tried before on small objects drew), half of them in the
        ``tabletop`` style (a ``varied`` scene on a table in front of a wall, soft shadows), a
        sixth each ``varied``, shaded and flat: the first four stages knew one background per
        scene, and on a table seen at an angle in front of a wall (a renderer written for a
        check) they proposed masks of pieces of the table, most on wood-coloured ones."""
        fourth = cls.other_renderers(init_weights)
        return replace(fourth, styles='tabletop,varied,tabletop,shaded,tabletop,flat',
                       first_scene=fourth.after_scenes + fourth.steps * fourth.images_per_step)

    @property
    def after_scenes(self) -> int:
        """Index of the first training scene after the ones this recipe trains on (where a
        later stage's fresh scenes start)."""
        return self.first_scene + self.steps * self.images_per_step

    @classmethod
    def smoke(cls) -> 'SamRecipe':
        """A few tiny steps for CI: exercises every part, learns nothing."""
        return cls().as_smoke()

    def as_smoke(self) -> 'SamRecipe':
        """This recipe (its styles, scenes and start) with a few tiny steps of a small net."""
        arch = replace(DEMO_SAM_ARCH, encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=2)
        return replace(self, steps=2, images_per_step=1, object_prompts=2, random_prompts=1,
                       points_per_mask=64, warmup_steps=1, arch=arch, eval_scenes=1,
                       eval_styles='shaded')



def model_input(sam, image_rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, S, S) float32 as ``SamPredictor.set_image`` prepares it."""
    from segment_anything.utils.transforms import ResizeLongestSide

    resized = ResizeLongestSide(sam.image_encoder.img_size).apply_image(image_rgb)
    x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
    return sam.preprocess(x)


@dataclass(frozen=True)
class _Regions:
    """Pixel lists of one scene's regions: 0 = the table, k + 1 = object k.

    Attributes:
        label: (H, W) int32 region of every pixel.
        inside: per object, (n, 2) int xy of its pixels.
        edges: per region, (m, 2) int xy of the pixels on its boundary (either side).
    """

    label: np.ndarray
    inside: list[np.ndarray]
    edges: list[np.ndarray]

    @classmethod
    def of(cls, masks: np.ndarray) -> '_Regions':
        label = np.zeros(masks.shape[1:], np.int32)
        for k, mask in enumerate(masks):
            label[mask] = k + 1
        kernel = np.ones((3, 3), np.uint8)
        inside, edges = [], []
        for k in range(len(masks) + 1):
            region = (label == k).astype(np.uint8)
            edge = cv2.morphologyEx(region, cv2.MORPH_GRADIENT, kernel)
            edges.append(cv2.findNonZero(edge).reshape(-1, 2))
            if k:
                inside.append(cv2.findNonZero(region).reshape(-1, 2))
        return cls(label, inside, edges)


def _sample_prompts(rng: np.random.Generator, regions: _Regions, recipe: SamRecipe
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Prompt points (P, 2) float xy in image pixels and the region under each (P,) int."""
    points = []
    for _ in range(recipe.object_prompts):
        pixels = regions.inside[rng.integers(len(regions.inside))]
        points.append(pixels[rng.integers(len(pixels))] + rng.random(2))
    height, width = regions.label.shape
    for _ in range(recipe.random_prompts):
        points.append((rng.uniform(0, width), rng.uniform(0, height)))
    points_xy = np.array(points, np.float32)
    under = regions.label[points_xy[:, 1].astype(int), points_xy[:, 0].astype(int)]
    return points_xy, under


def _loss_points(rng: np.random.Generator, regions: _Regions, under: np.ndarray, count: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Points (P, count, 2) float xy near the boundary of each prompt's region (Gaussian
    jitter of 3 px around boundary pixels) and their truth (P, count) bool."""
    out = np.empty((len(under), count, 2), np.float32)
    for p, k in enumerate(under):
        edge = regions.edges[k]
        out[p] = edge[rng.integers(len(edge), size=count)] + 0.5 + rng.normal(0, 3.0, (count, 2))
    height, width = regions.label.shape
    out[..., 0] = np.clip(out[..., 0], 0, width - 1e-3)
    out[..., 1] = np.clip(out[..., 1], 0, height - 1e-3)
    idx = out.astype(int)
    truth = regions.label[idx[..., 1], idx[..., 0]] == under[:, None]
    return out, truth


def _logits_at(low_res: torch.Tensor, points_xy: torch.Tensor, scale: float, side: int
               ) -> torch.Tensor:
    """Low-res mask logits (P, M, h, w) read bilinearly at image points (P, K, 2) → (P, M, K).

    Image pixel centre x + 0.5 maps to (x + 0.5)·scale in the padded model input of ``side``
    pixels, which the low-res grid covers edge to edge (``align_corners=False``).
    """
    grid = (points_xy * scale / side) * 2.0 - 1.0                  # (P, K, 2) in [-1, 1]
    sampled = F.grid_sample(low_res, grid[:, None], mode='bilinear', align_corners=False)
    return sampled[:, :, 0]                                        # (P, M, K)


def _step_loss(sam, scenes, rng: np.random.Generator, recipe: SamRecipe) -> dict:
    """Loss of one batch of scenes: point-sampled BCE + dice per mask, MSE of the IoU head."""
    side = sam.image_encoder.img_size
    images = torch.cat([model_input(sam, s.image_rgb) for s in scenes])
    embeddings = sam.image_encoder(images)                          # (B, C, g, g)
    dense_pe = sam.prompt_encoder.get_dense_pe()
    mask_losses, iou_losses, ious = [], [], []
    for b, scene in enumerate(scenes):
        regions = _Regions.of(scene.masks)
        scale = side / max(regions.label.shape)
        points_xy, under = _sample_prompts(rng, regions, recipe)
        coords = torch.from_numpy(points_xy * scale)[:, None]       # (P, 1, 2) model pixels
        sparse, dense = sam.prompt_encoder(
            points=(coords, torch.ones(len(points_xy), 1)), boxes=None, masks=None)
        low_res, iou_pred = sam.mask_decoder.predict_masks(
            embeddings[b:b + 1], dense_pe, sparse, dense)           # (P, M, h, w), (P, M)
        mask_losses.append(_low_res_loss(low_res, regions.label, under)
                           + recipe.edge_loss_weight * _edge_loss(
                               rng, low_res, regions, under, recipe.points_per_mask, scale, side))
        actual = _mask_iou(low_res.detach(), regions.label, under, side)  # (P, M)
        iou_losses.append(F.mse_loss(iou_pred, actual))
        ious.append(actual.mean())
    mask_loss = torch.stack(mask_losses).mean()
    iou_loss = torch.stack(iou_losses).mean()
    return {'loss': mask_loss + recipe.iou_loss_weight * iou_loss, 'mask': mask_loss,
            'iou_head': iou_loss, 'iou': torch.stack(ious).mean()}


def _low_res_loss(low_res: torch.Tensor, label: np.ndarray, under: np.ndarray
                  ) -> torch.Tensor:
    """BCE + dice of the low-res logits (P, M, h, w) against each region's pixel fraction per
    low-res cell (the image part of the padded grid only)."""
    cover = np.stack([low_res_shares(label == k, low_res.shape[-1]) for k in under])
    rows, cols = cover.shape[1:]
    logits = low_res[..., :rows, :cols]
    truth = torch.from_numpy(cover)[:, None].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, truth)
    prob = logits.sigmoid()
    dice = 1 - (2 * (prob * truth).sum((-2, -1)) + 1) / (
        prob.sum((-2, -1)) + truth.sum((-2, -1)) + 1)
    return bce + dice.mean()


def _edge_loss(rng: np.random.Generator, low_res: torch.Tensor, regions: '_Regions',
               under: np.ndarray, count: int, scale: float, side: int) -> torch.Tensor:
    """BCE at full-resolution points near each region's boundary, read from the low-res logits
    where ``SamPredictor`` upsamples them: sharpens the masks below the low-res cell size."""
    samples, truth = _loss_points(rng, regions, under, count)
    logits = _logits_at(low_res, torch.from_numpy(samples), scale, side)
    truth = torch.from_numpy(truth)[:, None].float().expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, truth)


def _mask_iou(low_res: torch.Tensor, label: np.ndarray, under: np.ndarray, side: int
              ) -> torch.Tensor:
    """IoU (P, M) of thresholded masks with their regions, at half the model resolution."""
    half = side // 2
    rows, cols = (round(n * half / max(label.shape)) for n in label.shape)
    pred = F.interpolate(low_res, (half, half), mode='bilinear', align_corners=False)
    pred = pred[..., :rows, :cols] > 0                              # (P, M, rows, cols)
    small = cv2.resize(label, (cols, rows), interpolation=cv2.INTER_NEAREST)
    gt = torch.from_numpy(small[None] == under[:, None, None])[:, None]
    inter = (pred & gt).sum((-2, -1)).float()
    union = (pred | gt).sum((-2, -1)).float()
    return inter / union.clamp(min=1.0)


def _save(sam, arch: SamArchitecture, out: Path) -> None:
    """Writes ``sam_arch.json`` and ``sam.pth`` (an fp16 state dict, as SAM's checkpoints are
    plain state dicts)."""
    out.mkdir(parents=True, exist_ok=True)
    arch.to_json(out / 'sam_arch.json')
    torch.save({k: v.detach().half() if v.is_floating_point() else v
                for k, v in sam.state_dict().items()}, out / 'sam.pth')


def _load_weights(path: str | Path) -> dict:
    """A ``sam.pth`` state dict as float32 tensors (the file holds fp16)."""
    return {k: v.float() for k, v in torch.load(path, weights_only=True).items()}


def train_sam(out_dir: str | Path, recipe: SamRecipe = SamRecipe()) -> dict:
    """Trains, evaluates on held-out scenes and writes ``sam_arch.json``, ``sam.pth`` and
    ``sam_metrics.json`` to ``out_dir``. Returns the metrics."""
    from hybridgl_ros.demo.eval_models import evaluate_sam, write_json

    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng([recipe.seed, 7])
    sam = build_sam(recipe.arch)
    if recipe.init_weights:
        sam.load_state_dict(_load_weights(recipe.init_weights))
    sam.train()
    styles = recipe.styles.split(',')
    params = [p for p in sam.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    start = time.time()
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group['lr'] = recipe.lr_at(step)
        first = recipe.first_scene + step * recipe.images_per_step
        scenes = [make_scene(TRAIN_SCENE_SEED, index, styles[index % len(styles)],
                             recipe.object_scale(index))
                  for index in range(first, first + recipe.images_per_step)]
        losses = _step_loss(sam, scenes, rng, recipe)
        opt.zero_grad(set_to_none=True)
        losses['loss'].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if recipe.checkpoint_every and (step + 1) % recipe.checkpoint_every == 0:
            _save(sam, recipe.arch, Path(out_dir))
        if step % 20 == 0 or step == recipe.steps - 1:
            LOGGER.info('sam step %d/%d %.0fs %s', step, recipe.steps, time.time() - start,
                        {k: round(float(v.detach()), 4) for k, v in losses.items()})
    train_seconds = time.time() - start
    out = Path(out_dir)
    _save(sam, recipe.arch, out)
    shipped = build_sam(recipe.arch)
    shipped.load_state_dict(_load_weights(out / 'sam.pth'))
    eval_styles = recipe.eval_styles.split(',')
    by_style = {style: evaluate_sam(shipped, EVAL_SCENE_SEED, recipe.eval_scenes, style=style)
                for style in eval_styles}
    metrics = dict(by_style[eval_styles[0]])
    metrics.update(styles=by_style, train_styles=recipe.styles,
                   init_weights=recipe.init_weights,
                   recipe={k: v for k, v in asdict(recipe).items() if k != 'arch'},
                   train_seconds=round(train_seconds, 1), steps=recipe.steps, seed=recipe.seed,
                   parameters=sum(p.numel() for p in sam.parameters()),
                   weights_bytes=(out / 'sam.pth').stat().st_size)
    write_json(out / 'sam_metrics.json', metrics)
    return metrics


def train_demo_sam(out_dir: str | Path, steps: int = 0, seed: int | None = None,
                   smoke: bool = False, start_from: str = '') -> dict:
    """The five stages into ``out_dir`` (the first four stages' files in ``out_dir/stage1`` …
    ``out_dir/stage4``), or, with ``start_from`` (the first stage's ``sam.pth``), the later
    four from those weights. ``steps`` (if > 0) and ``seed`` override each stage's recipe;
    ``smoke``: a few tiny steps of each. Returns the final metrics (with the earlier stages'
    under ``stage1`` … ``stage4``)."""
    def adjust(recipe: SamRecipe) -> SamRecipe:
        return (recipe.as_smoke() if smoke else recipe).with_overrides(steps, seed)

    later = [SamRecipe.fine_tune, SamRecipe.at_other_sizes, SamRecipe.other_renderers,
             SamRecipe.tabletop]
    return train_in_stages(out_dir, SamRecipe(), later, train_sam, 'sam.pth', 'sam_metrics.json',
                           start_from, adjust)
