"""Reduced precision never changes answers silently.

* The policy: what 'auto' runs in bfloat16/float16 on which device, never in parity mode.
* bfloat16 SAM encoder (the CPU default for a full-size SAM): forced on the demo SAM, the
  generated scenes keep their answers and their accuracy.
* float16 on CUDA: the parity cases keep their top-3 and their chosen mask (needs a GPU).
"""
import numpy as np
import pytest
import torch

from hybridgl_ros.core import models
from hybridgl_ros.core.models import StageDtypes, stage_dtypes

CPU, CUDA = torch.device('cpu'), torch.device('cuda')
VIT_B_ENCODER = 89_000_000
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def test_fp32_and_parity_mode_run_everything_in_float32():
    for device in (CPU, CUDA):
        assert stage_dtypes('fp32', device, False, VIT_B_ENCODER) == StageDtypes()
        for precision in ('auto', 'fp16', 'bf16'):
            assert stage_dtypes(precision, device, True, VIT_B_ENCODER) == StageDtypes()


def test_auto_is_float16_everywhere_on_cuda():
    assert stage_dtypes('auto', CUDA, False) == StageDtypes(torch.float16, torch.float16)


@pytest.mark.parametrize('native_bf16', [True, False])
def test_auto_on_cpu_keeps_clip_in_float32_and_a_full_size_sam_in_bf16_if_native(
        monkeypatch, native_bf16):
    monkeypatch.setattr(models, 'cpu_has_native_bf16', lambda: native_bf16)
    full_size = stage_dtypes('auto', CPU, False, VIT_B_ENCODER)
    assert full_size.clip is None
    assert full_size.sam_encoder == (torch.bfloat16 if native_bf16 else None)
    assert stage_dtypes('auto', CPU, False, 1_000_000) == StageDtypes()   # the demo SAM


def test_an_explicit_reduced_precision_applies_to_every_stage():
    assert stage_dtypes('bf16', CPU, False) == StageDtypes(torch.bfloat16, torch.bfloat16)
    assert stage_dtypes('fp16', CUDA, False) == StageDtypes(torch.float16, torch.float16)


def _scene_answers(pipeline, scenes):
    from hybridgl_ros.demo.end_to_end import END_TO_END_SEED, mask_iou
    from hybridgl_ros.demo.expressions import scene_expressions
    from hybridgl_ros.demo.scenes import make_scene

    answers = []
    for index in range(scenes):
        scene = make_scene(END_TO_END_SEED, index)
        frame = pipeline.prepare(scene.image_rgb)
        for ref in scene_expressions(scene.objects, END_TO_END_SEED, index):
            for sentence in ref.sentences:
                result = pipeline.query(frame, sentence)
                answers.append((result.index, result.candidate_indices, result.mask,
                                mask_iou(result.mask, scene.masks[ref.target]) >= 0.5))
    return answers


def test_a_bf16_sam_encoder_keeps_the_answers_on_generated_scenes(spacy_parser):
    from hybridgl_ros.core.models import load_clip, load_sam
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.core.proposals import SamProposer
    from hybridgl_ros.demo import demo_config
    from hybridgl_ros.demo.end_to_end import mask_iou

    config = demo_config()
    clip, sam = load_clip(config.models, CPU), load_sam(config.models, CPU)
    fp32 = HybridGL.from_models(config, clip, sam, parser=spacy_parser)
    assert fp32.proposer._generator.encoder_dtype is None   # the demo SAM is small: fp32
    bf16 = HybridGL(config, clip_model=clip, parser=spacy_parser,
                    proposer=SamProposer(sam, config.proposals, torch.bfloat16))
    expected, got = _scene_answers(fp32, 2), _scene_answers(bf16, 2)
    same = [g[0] == e[0] and g[1] == e[1] and mask_iou(g[2], e[2]) > 0.95
            for g, e in zip(got, expected)]
    assert len(same) >= 25 and np.mean(same) >= 0.95
    assert abs(sum(g[3] for g in got) - sum(e[3] for e in expected)) <= 1


@requires_cuda
@pytest.mark.cuda
def test_fp16_autocast_on_cuda_keeps_the_top3_and_the_mask_of_fp32_on_the_parity_cases():
    import parity_precision

    clip = parity_precision.parity_clip('cuda')
    runs = {}
    for precision in ('fp32', 'auto'):
        segmenter, proposer = parity_precision.parity_segmenter(precision, 'cuda', clip)
        runs[precision] = parity_precision.parity_answers(segmenter, proposer)
    report = parity_precision.agreement(runs['fp32'], runs['auto'])
    assert report['queries'] >= 40
    assert report['same_top3'] == report['same_chosen'] == report['queries'], report
