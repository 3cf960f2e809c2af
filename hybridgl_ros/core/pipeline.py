"""HybridGL end to end: ``prepare(image) -> Frame`` once per image, ``query(frame, text)`` per
expression (spec §1, §13)."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from hybridgl_ros.core.cancel import CancelToken, checked_during, sam_checkpoints
from hybridgl_ros.core.cancel import check as check_cancel
from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import InvalidInputError, ResourceExhaustedError
from hybridgl_ros.core.out_of_memory import out_of_memory_as_error
from hybridgl_ros.core.proposals import drop_split_masks
from hybridgl_ros.core.text import is_blank
from hybridgl_ros.core.types import Frame, Segmentation

LOG = logging.getLogger(__name__)


def block_index(fraction: float, depth: int) -> int:
    """A block given as a fraction of the depth: 0.75 of 12 -> 9, of 4 -> 3."""
    return min(max(int(round(fraction * depth)), 0), depth - 1)


class HybridGL:
    """Referring-expression segmentation, training-free (HybridGL, CVPR 2025).

    Args:
        config: the method's configuration.
        clip_model: an open_clip CLIP on its device (serves the mask features, the text
            features and GEM).
        proposer: a :class:`~hybridgl_ros.core.proposals.MaskProposer` (SAM).
        parser: an expression parser with ``parse(text) -> ParsedExpression``; spaCy by default.
    """

    def __init__(self, config: HybridGLConfig, *, clip_model, proposer, parser=None) -> None:
        from hybridgl_ros.core.decision import calibration_applies, clip_fingerprint
        from hybridgl_ros.core.encoder import HybridEncoder
        from hybridgl_ros.core.models import autocast_dtype, text_tokenizer
        from hybridgl_ros.core.text import SpacyParser
        from hybridgl_ros.core.text_features import TextEncoder

        self.config = config
        self.device = next(clip_model.parameters()).device
        self.autocast_dtype = autocast_dtype(config.models.precision, self.device,
                                             config.reference)
        visual = clip_model.visual
        depth = len(visual.transformer.resblocks)
        self.fusion_start = block_index(config.features.fusion_start_fraction, depth)
        self.gem_start = block_index(config.gem.start_fraction, depth)
        self.visual = visual
        self.encoder = HybridEncoder(visual, config.features, self.fusion_start, self.device,
                                     self.autocast_dtype)
        self.text = TextEncoder(clip_model, text_tokenizer(clip_model), config.text.cache_size,
                                self.autocast_dtype)
        self.parser = parser or SpacyParser.from_config(config)
        self.proposer = proposer
        self.sam_input_side = sam_input_side(proposer)
        self.sam_input_pixels = sam_input_pixels(proposer)
        self.clip_fingerprint = clip_fingerprint(clip_model)
        self.calibrated = calibration_applies(config.decision, self.clip_fingerprint)

    @classmethod
    def from_config(cls, config: HybridGLConfig | None = None) -> 'HybridGL':
        """Loads every model from local files (the embedded demo models where none is set)."""
        import torch

        from hybridgl_ros.core.models import (
            check_model_files, load_clip, load_sam, resolve_device)

        config = config or HybridGLConfig()
        check_model_files(config.models)  # a missing file is reported before anything loads
        if config.models.torch_threads > 0:
            torch.set_num_threads(config.models.torch_threads)
        device = resolve_device(config.models.device)
        return cls.from_models(config, load_clip(config.models, device),
                               load_sam(config.models, device))

    @classmethod
    def from_models(cls, config: HybridGLConfig, clip_model, sam, parser=None) -> 'HybridGL':
        """The segmenter of loaded models (an open_clip CLIP and a segment_anything Sam on
        the same device), with each stage's precision from ``models.precision``."""
        from hybridgl_ros.core.models import stage_dtypes
        from hybridgl_ros.core.proposals import SamProposer

        device = next(clip_model.parameters()).device
        encoder_size = sum(p.numel() for p in sam.image_encoder.parameters())
        dtypes = stage_dtypes(config.models.precision, device, config.reference, encoder_size)
        for stage, dtype in (('SAM image encoder', dtypes.sam_encoder), ('CLIP', dtypes.clip)):
            if dtype is not None:
                LOG.info('%s runs under %s autocast (models.precision=%s; fp32 for exact '
                         'float32)', stage, str(dtype).replace('torch.', ''),
                         config.models.precision)
        proposer = SamProposer(
            sam, config.proposals.for_mode(config.reference, sam.image_encoder.img_size),
            dtypes.sam_encoder)
        return cls(config, clip_model=clip_model, proposer=proposer, parser=parser)

    # ------------------------------------------------------------------------------ per frame
    def prepare(self, image_rgb: np.ndarray, cancel: CancelToken | None = None) -> Frame:
        """Everything text-independent: SAM masks, mask features, GEM image tokens.

        A frame with more pixels than ``proposals.max_working_pixels`` is processed downscaled
        (default mode; parity mode always works at full resolution): see ``core/resolution``.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            cancel: checked before each stage, each block of SAM's image encoder, each SAM
                decoder batch and each chunk of mask features; once set, the next check raises
                :class:`~hybridgl_ros.core.cancel.Cancelled`.

        Raises:
            InvalidInputError: not an (H, W, 3) uint8 image.
            ResourceExhaustedError: out of memory (CPU or GPU); nothing of the frame is kept.
        """
        import torch

        image_rgb = check_image(image_rgb)
        height, width = image_rgb.shape[:2]
        with out_of_memory_as_error(f'preparing a {width}x{height} frame'), \
                torch.inference_mode():
            return self._prepare(image_rgb, cancel)

    def _prepare(self, image_rgb: np.ndarray, cancel: CancelToken | None) -> Frame:
        from hybridgl_ros.core.gem import gem_image_tokens
        from hybridgl_ros.core.resolution import downscale, working_size

        timings: dict[str, float] = {}
        check_cancel(cancel)
        if self.sam_input_side:   # refused by the size the caller sent, not the working size's
            check_aspect_ratio(*image_rgb.shape[:2], self.sam_input_side)
        budget = 0 if self.config.reference else self.working_pixels
        size = working_size(*image_rgb.shape[:2], budget)
        with _timed(timings, 'resize'):
            working = downscale(image_rgb, size)
        checkpoints = sam_checkpoints(getattr(self.proposer, 'sam', None))
        with _timed(timings, 'proposals', self.device), checked_during(checkpoints, cancel):
            proposals = self.proposer.propose(working, **self._downscaled(image_rgb, size))
            if self.drops_split_masks:
                proposals = drop_split_masks(proposals)
        with _timed(timings, 'features', self.device):
            features = self.encoder.encode(working, proposals.masks, cancel,
                                           self.zoom_context, self.mirror_view)   # (N, D)
        gem_tokens, grid = None, (0, 0)
        check_cancel(cancel)
        if self.config.guidance.use_coherence and len(proposals):
            with _timed(timings, 'gem', self.device):
                gem_tokens, grid = gem_image_tokens(self.visual, working, self.config.gem,
                                                    self.gem_start, self.autocast_dtype)
        return Frame(image_size=image_rgb.shape[:2], proposals=proposals,
                     mask_features=features, gem_tokens=gem_tokens, gem_grid=grid,
                     timings_ms=timings, mask_tensor=masks_on_device(proposals.masks,
                                                                     self.device))

    # ------------------------------------------------------------------------------ per query
    def query(self, frame: Frame, text: str, explain: bool = False) -> Segmentation:
        """Resolves one expression on a prepared frame (spec §5–§10).

        Args:
            frame: from :meth:`prepare`.
            text: the referring expression.
            explain: also return every intermediate (parse, s, p, q, candidates, partners, R,
                softmax(R), the maps, S, F) as ``result.explanation``; its maps are at the
                frame's working size.

        Raises:
            InvalidInputError: empty text, or a frame dropped after running out of memory.
            ResourceExhaustedError: out of memory; the frame's state is dropped with it.
        """
        import torch

        self._check_text(text)
        if frame.dropped:
            raise InvalidInputError(f'the frame was dropped ({frame.dropped}): prepare the '
                                    'image again')
        try:
            with out_of_memory_as_error('answering a query'), torch.inference_mode():
                return self._query(frame, text, explain)
        except ResourceExhaustedError:
            frame.release('out of memory while answering a query')
            raise

    def _query(self, frame: Frame, text: str, explain: bool) -> Segmentation:
        from hybridgl_ros.core.decision import answer, decide, join_messages
        from hybridgl_ros.core.scoring import score_query, text_features

        timings: dict[str, float] = {}
        start = time.perf_counter()
        with _timed(timings, 'parse'):
            parse = self.parser.parse(text)
        message = self._truncation_message(parse)
        if len(frame.proposals) == 0:
            timings['total'] = _ms(start)
            why = join_messages(message, 'no object: SAM proposed no masks')
            return Segmentation.not_found(text, parse, frame.image_size, len(frame.proposals),
                                          why, timings)
        with _timed(timings, 'text', self.device):
            features = text_features(self.text, parse, self.config)
        with _timed(timings, 'scoring', self.device):
            scores = score_query(frame, parse, features, self.config, self.gem_input_side)
        with _timed(timings, 'decision'):
            decision = decide(scores, frame, parse, features, self.config, self.calibrated)
        timings['total'] = _ms(start)
        explanation = (scores.explanation(parse, features, frame.proposals.boxes_xywh, decision)
                       if explain else None)
        return answer(frame, text, parse, scores, decision, timings, message, explanation)

    def _truncation_message(self, parse) -> str:
        """What the text encoder cut: the text, or a prompt built from it (the GEM prompt, "a
        photo of" an anchor phrase), past the model's context; '' when nothing was cut. The
        authors' code fails on either; the method goes on with the truncated encoding."""
        from hybridgl_ros.core.scoring import prompts

        limit = self.text.context_length
        if self.text.is_truncated(parse.normalized):
            return f'text longer than the model\'s {limit} tokens: truncated'
        gem_text, others = prompts(parse, self.config)
        cut = next((p for p in (parse.head_phrase, gem_text, *others)
                    if self.text.is_truncated(p)), None)
        if cut is None:
            return ''
        shown = cut if len(cut) <= 60 else cut[:57] + '...'
        return f'the prompt \'{shown}\' is longer than the model\'s {limit} tokens: truncated'

    @property
    def drops_split_masks(self) -> bool:
        """Whether ``prepare`` drops the masks in pieces (``proposals.drop_split_masks``,
        default mode only)."""
        return self.config.proposals.drop_split_masks and not self.config.reference

    @property
    def zoom_context(self) -> float:
        """The zoomed look's margin (``features.zoom_context``; default mode only, 0 = off)."""
        return 0.0 if self.config.reference else self.config.features.zoom_context

    @property
    def mirror_view(self) -> bool:
        """Whether mask features sum the frame's and its mirror image's
        (``features.mirror_view``; default mode only)."""
        return self.config.features.mirror_view and not self.config.reference

    def _downscaled(self, image_rgb: np.ndarray, size: tuple[int, int]) -> dict:
        """What SAM's proposer is told of a frame it sees downscaled: the holes its clean-up
        fills are those below ``proposals.min_mask_region_area`` of the camera's pixels, as in
        parity mode, which works at the camera's size (an object's hole is the object's; its
        islands, SAM's artefacts, are measured at the working size as before). Nothing for a
        frame at its own size, or a proposer that takes the image only (``takes_hole_area``
        false or absent)."""
        height, width = image_rgb.shape[:2]
        if tuple(size) == (height, width) or not getattr(self.proposer, 'takes_hole_area',
                                                         False):
            return {}
        return {'min_hole_area': (self.config.proposals.min_mask_region_area
                                  * size[0] * size[1] / float(height * width))}

    @property
    def working_pixels(self) -> int:
        """The default mode's pixel budget: ``proposals.max_working_pixels``, SAM's input area
        for -1 (0: off)."""
        budget = self.config.proposals.max_working_pixels
        return self.sam_input_pixels if budget < 0 else budget

    def _check_text(self, text: str) -> None:
        """Refuses a text with nothing to answer before any work: empty, whitespace or invisible
        format characters only (``text.is_blank``, the node's rule too); in parity mode the
        parser's rule (a run of whitespace is text there, as in the released code; "" and " "
        are not).

        Raises:
            InvalidInputError: no expression.
        """
        if self.config.reference and isinstance(text, str):
            if not text.strip():
                self.parser.parse(text)
            return
        if not isinstance(text, str) or is_blank(text):
            raise InvalidInputError('the expression is empty')

    def segment(self, image_rgb: np.ndarray, text: str, explain: bool = False) -> Segmentation:
        """``query(prepare(image_rgb), text)``, with the frame's timings included."""
        self._check_text(text)
        frame = self.prepare(image_rgb)
        result = self.query(frame, text, explain)
        result.timings_ms.update({f'frame.{k}': v for k, v in frame.timings_ms.items()})
        return result

    @property
    def gem_input_side(self) -> int:
        """GEM's input side in pixels: input_scale × the ViT's input side (448 for ViT-B/16)."""
        return self.config.gem.input_scale * self.visual.image_size[0]


#: The pixel budget for -1 when the proposer has no SAM image encoder to read it from.
DEFAULT_WORKING_PIXELS = 1024 * 1024


def sam_input_side(proposer) -> int:
    """SAM's image encoder's input side (1024 for the SAM checkpoints, 256 for the embedded
    demo SAM; 0 for a proposer without one). Its square is SAM's input area: every mask comes
    from SAM at that resolution, so a frame processed at more pixels only makes the masks and
    the CLIP's mask images bigger (:func:`sam_input_pixels`, the default working budget)."""
    side = getattr(getattr(getattr(proposer, 'sam', None), 'image_encoder', None), 'img_size',
                   None)
    return int(side) if side else 0


def sam_input_pixels(proposer) -> int:
    """SAM's input area (1024² for the SAM checkpoints, 256² for the embedded demo SAM), or
    ``DEFAULT_WORKING_PIXELS`` for a proposer without a SAM."""
    side = sam_input_side(proposer)
    return side ** 2 if side else DEFAULT_WORKING_PIXELS


def masks_on_device(masks: np.ndarray, device):
    """A frame's ``mask_tensor``: (N, h, w) bool masks as a bool tensor on ``device``.

    One byte per pixel (a float copy would be four; on the CPU the tensor shares the array's
    memory); the spatial score converts a few masks at a time.
    """
    import torch

    return torch.from_numpy(np.ascontiguousarray(masks)).to(device, torch.bool)


def check_image(image_rgb) -> np.ndarray:
    """Validates an (H, W, 3) uint8 RGB image (InvalidInputError says what is wrong)."""
    if not isinstance(image_rgb, np.ndarray):
        raise InvalidInputError(f'the image must be a numpy array, not {type(image_rgb)}')
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise InvalidInputError(f'the image must be (H, W, 3) RGB, not {image_rgb.shape}')
    if image_rgb.dtype != np.uint8:
        raise InvalidInputError(f'the image must be uint8, not {image_rgb.dtype}')
    if min(image_rgb.shape[:2]) < 2:
        raise InvalidInputError(f'the image is too small: {image_rgb.shape[1]}x'
                                f'{image_rgb.shape[0]}')
    return np.ascontiguousarray(image_rgb)


def check_aspect_ratio(height: int, width: int, long_side: int) -> None:
    """Refuses an image too thin for a model that resizes its long side to ``long_side`` px.

    SAM scales the image so its long side is ``long_side`` (1024 for ViT-B/L/H) and rounds the
    short side to the nearest pixel; below half a pixel that is 0 and the resize fails. So the
    long side may be at most 2 x ``long_side`` times the short side (2048:1 for SAM).

    Raises:
        InvalidInputError: the image is thinner than that, with the limit in words.
    """
    short, long = sorted((int(height), int(width)))
    if int(short * long_side / long + 0.5) >= 1:
        return
    raise InvalidInputError(
        f'the image is {width}x{height}, an aspect ratio of {long / short:.0f}:1; SAM resizes '
        f'its long side to {long_side} px, which leaves the short side under half a pixel. '
        f'At most {2 * long_side}:1 is accepted: crop or pad the image')


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _sync(device) -> None:
    if device.type == 'cuda':
        import torch

        torch.cuda.synchronize(device)


@contextmanager
def _timed(timings: dict, name: str, device=None) -> Iterator[None]:
    """Adds the milliseconds of the block to ``timings[name]`` (GPU work included)."""
    start = time.perf_counter()
    yield
    if device is not None:
        _sync(device)
    timings[name] = _ms(start)
