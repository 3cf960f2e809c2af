"""SAM architectures described as data, built with ``segment_anything``'s own classes.

The official models (vit_h/l/b) come from ``segment_anything.sam_model_registry``; a model of
any other size (the project's tiny demo SAM) is described by a :class:`SamArchitecture` saved as
JSON next to its checkpoint, and :func:`build_sam` assembles the same ``Sam`` from
``ImageEncoderViT``, ``PromptEncoder`` and ``MaskDecoder``/``TwoWayTransformer``, so
``SamPredictor`` and ``SamAutomaticMaskGenerator`` run on it unchanged.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from hybridgl_ros.core.errors import ModelLoadError


@dataclass(frozen=True)
class SamArchitecture:
    """Hyper-parameters of a ``segment_anything`` SAM. Defaults are those of vit_b.

    Attributes:
        img_size: side of the (square, padded) encoder input in pixels.
        patch_size: ViT patch side in pixels; the embedding grid is img_size / patch_size.
        encoder_embed_dim, encoder_depth, encoder_num_heads: the image ViT.
        encoder_global_attn_indexes: blocks with global attention (the others are windowed).
        window_size: attention window of the other blocks in tokens (0 = all global).
        use_rel_pos: relative position terms in the encoder's attention.
        mlp_ratio: MLP width / embed dim in the encoder.
        prompt_embed_dim: channels of the image embedding and of the prompt/mask decoder.
        mask_in_chans: hidden channels of the dense (mask) prompt encoder.
        decoder_depth, decoder_num_heads, decoder_mlp_dim: the two-way transformer.
        num_multimask_outputs: masks per prompt when ``multimask_output`` is set.
        iou_head_depth, iou_head_hidden_dim: the IoU prediction MLP.
        pixel_mean, pixel_std: RGB normalisation (0-255 scale).
    """

    img_size: int = 1024
    patch_size: int = 16
    encoder_embed_dim: int = 768
    encoder_depth: int = 12
    encoder_num_heads: int = 12
    encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    use_rel_pos: bool = True
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    @property
    def embedding_side(self) -> int:
        """Side of the image embedding grid in tokens."""
        return self.img_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> 'SamArchitecture':
        """Inverse of :meth:`to_dict`; unknown keys raise ModelLoadError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelLoadError(f'unknown SAM architecture fields: {", ".join(unknown)}')
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def to_json(self, path: str | Path) -> None:
        """Writes the architecture as an indented JSON object."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + '\n')

    @classmethod
    def from_json(cls, path: str | Path) -> 'SamArchitecture':
        """Reads an architecture JSON (ModelLoadError if missing or malformed)."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f'cannot read SAM architecture {path}: {exc}') from exc
        if not isinstance(values, dict):
            raise ModelLoadError(f'{path}: a SAM architecture is a JSON object')
        try:
            return cls.from_dict(values)
        except TypeError as exc:
            raise ModelLoadError(f'{path}: {exc}') from exc


def build_sam(arch: SamArchitecture) -> Any:
    """A randomly initialised ``segment_anything.modeling.Sam`` of this architecture, eval mode.

    With the default fields this is the same network (same state-dict keys and shapes) as
    ``sam_model_registry['vit_b']``.
    """
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer)

    side = arch.embedding_side
    encoder = ImageEncoderViT(
        img_size=arch.img_size, patch_size=arch.patch_size, embed_dim=arch.encoder_embed_dim,
        depth=arch.encoder_depth, num_heads=arch.encoder_num_heads, mlp_ratio=arch.mlp_ratio,
        out_chans=arch.prompt_embed_dim, qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=arch.use_rel_pos,
        global_attn_indexes=arch.encoder_global_attn_indexes, window_size=arch.window_size)
    prompt_encoder = PromptEncoder(
        embed_dim=arch.prompt_embed_dim, image_embedding_size=(side, side),
        input_image_size=(arch.img_size, arch.img_size), mask_in_chans=arch.mask_in_chans)
    decoder = MaskDecoder(
        num_multimask_outputs=arch.num_multimask_outputs,
        transformer=TwoWayTransformer(
            depth=arch.decoder_depth, embedding_dim=arch.prompt_embed_dim,
            mlp_dim=arch.decoder_mlp_dim, num_heads=arch.decoder_num_heads),
        transformer_dim=arch.prompt_embed_dim, iou_head_depth=arch.iou_head_depth,
        iou_head_hidden_dim=arch.iou_head_hidden_dim)
    sam = Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=decoder,
              pixel_mean=list(arch.pixel_mean), pixel_std=list(arch.pixel_std))
    return sam.eval()
