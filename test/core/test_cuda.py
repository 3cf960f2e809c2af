"""The CUDA path (skipped without a GPU; scripts/gpu_check.sh runs these on one).

Embedded demo models on the GPU: the bounded generator against segment_anything's there, the
answers against the CPU's, a real CUDA out-of-memory refused and survived.
"""

import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import ResourceExhaustedError
from hybridgl_ros.demo.scenes import make_scene

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]
CUDA = torch.device('cuda')


def pipeline(device, **flat):
    from hybridgl_ros.core.pipeline import HybridGL

    return HybridGL.from_config(HybridGLConfig.from_flat({'models.device': device, **flat}))


def test_the_bounded_generator_equals_segment_anythings_on_cuda():
    from segment_anything import SamAutomaticMaskGenerator

    from hybridgl_ros.core.mask_generation import BoundedMaskGenerator
    from hybridgl_ros.core.models import load_sam

    config = HybridGLConfig()
    sam = load_sam(config.models, CUDA)
    image = make_scene(5, 0).image_rgb
    settings = config.proposals.generator_settings(sam.image_encoder.img_size)
    with torch.inference_mode():
        records = SamAutomaticMaskGenerator(sam, output_mode='binary_mask',
                                            **settings).generate(image)
    got = BoundedMaskGenerator(sam, config.proposals).generate(image)
    assert np.array_equal(got['masks'], np.stack([r['segmentation'] for r in records]))


@pytest.mark.parametrize('precision', ['fp32', 'auto'])
def test_cuda_answers_match_the_cpus(precision):
    from hybridgl_ros.demo.end_to_end import mask_iou

    cpu, gpu = pipeline('cpu', **{'models.precision': 'fp32'}), \
        pipeline('cuda', **{'models.precision': precision})
    scene = make_scene(5, 1)
    frames = cpu.prepare(scene.image_rgb), gpu.prepare(scene.image_rgb)
    assert frames[1].mask_tensor.device.type == 'cuda'
    same = []
    for text in ('the red object', 'the object on the left', 'the biggest object'):
        expected, got = cpu.query(frames[0], text), gpu.query(frames[1], text)
        assert isinstance(got.mask, np.ndarray) and got.mask.shape == (480, 640)
        same.append(mask_iou(got.mask, expected.mask) > 0.9)
    assert sum(same) >= 2


def test_a_cuda_out_of_memory_is_refused_and_the_next_frame_is_answered():
    segmenter = pipeline('cuda', **{'proposals.max_working_pixels': 0})
    segmenter.segment(make_scene(5, 2).image_rgb, 'the red object')   # warm up
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(CUDA).total_memory
    allowed = torch.cuda.memory_allocated(CUDA) + 32 * 2 ** 20
    huge = np.zeros((4320, 7680, 3), np.uint8)   # 8K: its float copy alone is 400 MB
    try:
        torch.cuda.set_per_process_memory_fraction(allowed / total, CUDA)
        with pytest.raises(ResourceExhaustedError, match='out of memory'):
            segmenter.prepare(huge)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
    assert segmenter.segment(make_scene(5, 3).image_rgb, 'the red object').found
