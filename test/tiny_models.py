"""Tiny model definitions shared by the tests (importable: test/ is on pytest's pythonpath)."""

#: An open_clip model config shaped like ViT-B/16 where it matters: 12 blocks and a 14x14
#: token grid (56 px, patch 4), so fusion at block 9 and GEM blocks 6-11 run as in ViT-B/16.
TINY_CLIP_CONFIG = {
    'embed_dim': 32,
    'quick_gelu': True,
    'vision_cfg': {'image_size': 56, 'layers': 12, 'width': 64, 'patch_size': 4,
                   'head_width': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2,
                 'layers': 2},
}
