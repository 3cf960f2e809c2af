"""The demo CLIP's training losses (``train_clip``; the module docstring there says what each
teaches): the soft multi-positive contrastive loss, the presence loss against a learnt "none"
level, and the coherence losses on the GEM stream's patch tokens."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hybridgl_ros.demo.clip_data import PooledScene, phrase, region_descriptor


def soft_clip_loss(image_f: torch.Tensor, text_f: torch.Tensor, targets: torch.Tensor,
                   scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy with multi-positive targets (R, C) of 0/1."""
    logits = scale * F.normalize(image_f, dim=-1) @ F.normalize(text_f, dim=-1).T
    rows = targets.sum(1) > 0
    cols = targets.sum(0) > 0
    i2t = -(targets[rows] / targets[rows].sum(1, keepdim=True)
            * logits[rows].log_softmax(1)).sum(1).mean()
    t2i = -(targets[:, cols] / targets[:, cols].sum(0, keepdim=True)
            * logits[:, cols].log_softmax(0)).sum(0).mean()
    return 0.5 * (i2t + t2i)


def presence_loss(image_f: torch.Tensor, text_f: torch.Tensor, targets: torch.Tensor,
                  owners: tuple[torch.Tensor, torch.Tensor], scale: torch.Tensor,
                   none_cosine: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each caption over its own scene's regions plus "none".

    Args:
        image_f, text_f: (R, D) region and (C, D) caption features.
        targets: (R, C) 0/1, region r satisfies caption c.
        owners: the scene of every region (R,) and of every caption (C,).
        none_cosine: the learnt cosine level of the "none" option.
    """
    region_scene, caption_scene = owners
    same = caption_scene[:, None] == region_scene[None, :]                   # (C, R)
    logits = scale * F.normalize(text_f, dim=-1) @ F.normalize(image_f, dim=-1).T
    logits = torch.cat([logits.masked_fill(~same, float('-inf')),
                        (scale * none_cosine).expand(len(text_f), 1)], dim=1)
    hits = targets.T * same                                                  # (C, R)
    target = torch.cat([hits, (hits.sum(1, keepdim=True) == 0).float()], dim=1)
    target = target / target.sum(1, keepdim=True)
    log_probs = logits.log_softmax(1).masked_fill(target == 0, 0.0)
    return -(target * log_probs).sum(1).mean()


def gem_patches(visual, pixels: torch.Tensor, start_block: int) -> torch.Tensor:
    """(B, P, D) L2-normalised GEM patch tokens of images (B, 3, S, S), with gradients.

    The same computation as ``hybridgl_ros.core.gem.gem_image_tokens`` (which runs without
    gradients on one image): positional embedding resampled to the grid, the normal stream up
    to ``start_block``, then one self-self attention update per block on the GEM stream.
    """
    from hybridgl_ros.core.gem import resample_positional_embedding, self_self_attention

    x = visual.conv1(pixels)                                         # (B, C, rows, cols)
    grid = (int(x.shape[-2]), int(x.shape[-1]))
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    positional = resample_positional_embedding(visual.positional_embedding,
                                               tuple(visual.grid_size), grid)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + positional)
    blocks = visual.transformer.resblocks
    for block in blocks[:start_block]:
        x = block(x)
    gem = x
    for index in range(start_block, len(blocks)):
        gem = gem + blocks[index].ls_1(self_self_attention(blocks[index].ln_1(x),
                                                           blocks[index].attn))
        if index < len(blocks) - 1:
            x = blocks[index](x)
    return F.normalize(visual.ln_post(gem[:, 1:]) @ visual.proj, dim=-1)


def coherence_loss(model, picks: list[PooledScene], rng: np.random.Generator,
                   tokenizer, scale: torch.Tensor, phrases_per_object: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mass loss, contrast loss) of object phrases on their scenes' GEM patches.

    Mass: cross-entropy of each phrase's softmax over its scene's patches against the share of
    every patch covered by the objects the phrase is true of. Contrast: squared error between
    the mean of the min-max normalised cosine map over each region (objects, then the table) and
    1 for the objects the phrase is true of, 0 for the rest.
    """
    from hybridgl_ros.core.config import GemConfig
    from hybridgl_ros.core.pipeline import block_index

    gem = GemConfig()
    start = block_index(gem.start_fraction, len(model.visual.transformer.resblocks))
    patches = gem_patches(model.visual, torch.stack([s.gem_image for s in picks]).float(),
                          start)                                     # (B, P, D)
    texts, hits_all, owners = [], [], []
    for b, scene in enumerate(picks):
        regions = [region_descriptor(o) for o in scene.objects]
        for obj in scene.objects:
            for _ in range(phrases_per_object):
                text, desc = phrase(rng, obj)
                texts.append(gem.prompt.format(text))
                hits_all.append(torch.tensor([float(desc.matches(r)) for r in regions] + [0.0]))
                owners.append(b)
    text_f = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)  # (K, D)
    cosine = torch.einsum('kd,kpd->kp', text_f, patches[torch.tensor(owners)])  # (K, P)
    mass, contrast = [], []
    for k, (hits, b) in enumerate(zip(hits_all, owners)):
        cover = picks[b].coverage.float().flatten(1)                 # (R, P), table last
        target = hits @ cover
        target = target / target.sum().clamp(min=1e-6)
        mass.append(-(target * (scale * cosine[k]).log_softmax(0)).sum())
        low, high = cosine[k].min(), cosine[k].max()
        normalised = (cosine[k] - low) / (high - low).clamp(min=1e-6)
        region_means = (cover @ normalised) / cover.sum(1).clamp(min=1e-6)
        contrast.append(((region_means - hits) ** 2).mean())
    return torch.stack(mass).mean(), torch.stack(contrast).mean()
