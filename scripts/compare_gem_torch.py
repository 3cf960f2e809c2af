"""Compares hybridgl_ros's GEM (core/gem.py) with the authors' gem_torch on the same weights.

Runs only where ``gem_torch`` is installed together with an open_clip that it works with
(2.24.0: its blocks take (N, B, C) tokens; with open_clip 3.x gem_torch silently runs the
blocks before GEM on the wrong axis). Not a project dependency and not a test. A scratch
environment, outside the repository:

    python3 -m venv /tmp/gemcheck/venv
    /tmp/gemcheck/venv/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        gem_torch==1.0.1 open_clip_torch==2.24.0
    PYTHONPATH=/work/main /tmp/gemcheck/venv/bin/python scripts/compare_gem_torch.py

Both sides get one randomly initialised QuickGELU ViT-B/16 CLIP (or ``--arch tiny``), the same
state dict, the same image and the same text feature. Prints the largest absolute differences
of the input pixels, the normalised patch tokens and the coherence maps.
"""
import argparse
import copy
import logging

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hybridgl_ros.core.config import GemConfig
from hybridgl_ros.core.gem import coherence_map, gem_image_tokens, min_max, preprocess_image

ARCHS = {
    'b16': {'embed_dim': 512, 'quick_gelu': True,
            'vision_cfg': {'image_size': 224, 'layers': 12, 'width': 768, 'patch_size': 16},
            'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 512, 'heads': 8,
                         'layers': 12}},
    'tiny': {'embed_dim': 32, 'quick_gelu': True,
             'vision_cfg': {'image_size': 56, 'layers': 12, 'width': 64, 'patch_size': 4,
                            'head_width': 16},
             'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2,
                          'layers': 2}},
}


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: gradient, two shapes and some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([60 + 120 * xx / width, 80 + 100 * yy / height,
                      np.full((height, width), 128.0)], axis=-1)
    image[height // 4:height // 2, width // 8:width // 3] = (220, 40, 30)
    image[(yy - height * 0.6) ** 2 + (xx - width * 0.7) ** 2 < (height / 6) ** 2] = (30, 40, 220)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', choices=sorted(ARCHS), default='b16')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-hw', type=int, nargs=2, default=(375, 500))
    parser.add_argument('--phrase', default='the man on left')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    torch.set_num_threads(args.threads)

    import open_clip
    from gem.gem_wrapper import GEMWrapper
    from gem import get_gem_img_transform

    torch.manual_seed(args.seed)
    ours = open_clip.model.CLIP(**ARCHS[args.arch]).eval()
    theirs = copy.deepcopy(ours)
    theirs.load_state_dict(ours.state_dict())
    tokenizer = open_clip.get_tokenizer('ViT-B-16')
    depth = len(ours.visual.transformer.resblocks)
    start_block = round(GemConfig().start_fraction * depth)
    # gem_torch's depth d patches the last d - 1 blocks: GEM starts at block depth - d + 1
    gem_model = GEMWrapper(theirs, tokenizer, depth=depth - start_block + 1).eval()

    config = GemConfig()
    image = synthetic_image(*args.image_hw, seed=args.seed)
    side = config.input_scale * ours.visual.image_size[0]
    their_pixels = get_gem_img_transform((side, side))(Image.fromarray(image))[None]
    our_pixels = preprocess_image(image, (side, side), config.image_mean, config.image_std)
    report('input pixels (ours vs torchvision on PIL)', our_pixels, their_pixels)

    with torch.no_grad():
        tokens, grid = gem_image_tokens(ours.visual, image, config, start_block)
        text = ours.encode_text(tokenizer([config.prompt.format(args.phrase)]))[0]
        their_tokens = F.normalize(gem_model.model.visual(their_pixels)[0][0, 1:], dim=-1)
        report('GEM patch tokens', tokens, their_tokens)
        normal_tokens = F.normalize(gem_model.model.visual(their_pixels)[1][0, 1:], dim=-1)
        report('control: normal (non-GEM) patch tokens vs GEM ones', tokens, normal_tokens)
        their_map = gem_model(their_pixels, [args.phrase])[0, 0]  # (side, side), min-max
        report(f'coherence map at {side}px', _map_at_input_side(tokens, grid, text, side),
               their_map)
        # gem_torch stops at the input side; the resize to the image is HybridGL's step
        their_full = min_max(F.interpolate(their_map[None, None], size=tuple(args.image_hw),
                                           mode='bilinear', align_corners=False))[0, 0]
        report(f'coherence map at {tuple(args.image_hw)}',
               coherence_map(tokens, grid, text, side, tuple(args.image_hw)), their_full)


def _map_at_input_side(tokens, grid, text, side):
    """Our map before the resize to the image: (side, side)."""
    cosine = F.normalize(tokens, dim=-1) @ F.normalize(text, dim=0)
    scores = F.interpolate(cosine.reshape(1, 1, *grid), size=(side, side), mode='bilinear',
                           align_corners=False)
    return min_max(scores)[0, 0]


def report(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Logs the largest and mean absolute difference of two same-shaped tensors."""
    diff = (ours.float() - theirs.float()).abs()
    logging.info('%-62s max |diff| %.3e  mean %.3e  shape %s', name, diff.max().item(),
                 diff.mean().item(), tuple(ours.shape))


if __name__ == '__main__':
    main()
