"""Every out-of-memory becomes ResourceExhaustedError; the frame's state goes with it.

The real thing (an allocation refused under RLIMIT_DATA) is in test_memory_bounds.py; here the
wordings of torch, numpy and OpenCV are classified and the pipeline's reaction is checked with a
proposer and a parser that fail the way the libraries do.
"""
import cv2
import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import HybridGLError, InvalidInputError, ResourceExhaustedError
from hybridgl_ros.core.out_of_memory import is_out_of_memory, out_of_memory_as_error
from hybridgl_ros.core.pipeline import HybridGL
from hybridgl_ros.core.types import Proposals

CPU_WORDING = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
               'allocate memory: you tried to allocate 6370099200 bytes. Error code 12')


def raised_by(allocate) -> Exception:
    """The error a real, impossible allocation raises."""
    try:
        allocate()
    except Exception as exc:  # whatever the library raises is the subject of the test
        return exc
    raise AssertionError('the allocation did not fail')


@pytest.mark.parametrize('allocate', [
    lambda: np.empty(2 ** 62, np.uint8),
    lambda: torch.empty(2 ** 62, dtype=torch.uint8),
    lambda: cv2.resize(np.zeros((2, 2), np.uint8), (2 ** 20, 2 ** 20))],
    ids=['numpy', 'torch-cpu', 'opencv'])
def test_real_allocation_failures_of_every_library_count_as_out_of_memory(allocate):
    assert is_out_of_memory(raised_by(allocate))


def test_cuda_and_python_out_of_memory_count_too():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to '
                                                        'allocate 2.00 GiB'))
    assert is_out_of_memory(MemoryError())


@pytest.mark.parametrize('error', [RuntimeError('shape mismatch'), ValueError('out of memory'),
                                   ZeroDivisionError()])
def test_other_errors_are_not_out_of_memory(error):
    assert not is_out_of_memory(error)


def test_the_error_names_what_ran_out_and_keeps_the_cause_without_its_frames():
    with pytest.raises(ResourceExhaustedError) as info:
        with out_of_memory_as_error('preparing a 3840x2160 frame'):
            raise RuntimeError(CPU_WORDING)
    assert isinstance(info.value, HybridGLError) and isinstance(info.value, MemoryError)
    assert '3840x2160' in str(info.value) and "can't allocate memory" in str(info.value)
    assert info.value.__cause__.__traceback__ is None


def test_a_bug_passes_through_unchanged():
    with pytest.raises(ZeroDivisionError):
        with out_of_memory_as_error('answering a query'):
            raise ZeroDivisionError()


class FailingProposer:
    """Fails like torch's CPU allocator on the first call, then proposes the whole image."""

    def __init__(self):
        self.calls = 0

    def propose(self, image_rgb):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError(CPU_WORDING)
        height, width = image_rgb.shape[:2]
        return Proposals(np.ones((1, height, width), bool), np.array([[0, 0, width - 1,
                                                                       height - 1]]),
                         np.ones(1, np.float32))


class FailingParser:
    """The real parser, but the first parse fails like numpy running out of memory."""

    def __init__(self, parser):
        self.parser, self.calls = parser, 0

    def parse(self, text):
        self.calls += 1
        if self.calls == 1:
            raise MemoryError('Unable to allocate 6.0 GiB for an array')
        return self.parser.parse(text)


def test_prepare_out_of_memory_is_resource_exhausted_and_the_next_prepare_works(
        tiny_clip, spacy_parser, scene_rgb):
    segmenter = HybridGL(HybridGLConfig(), clip_model=tiny_clip, proposer=FailingProposer(),
                         parser=spacy_parser)
    with pytest.raises(ResourceExhaustedError, match='preparing a 128x96 frame'):
        segmenter.prepare(scene_rgb)
    assert segmenter.segment(scene_rgb, 'the red square').found


def test_query_out_of_memory_drops_the_frame_and_later_queries_say_prepare_again(
        tiny_clip, spacy_parser, scene_rgb):
    segmenter = HybridGL(HybridGLConfig(), clip_model=tiny_clip, proposer=FailingProposer(),
                         parser=FailingParser(spacy_parser))
    segmenter.proposer.calls = 1   # no failure in prepare
    frame = segmenter.prepare(scene_rgb)
    with pytest.raises(ResourceExhaustedError, match='answering a query'):
        segmenter.query(frame, 'the red square')
    assert frame.mask_tensor is None and frame.mask_features is None and frame.dropped
    with pytest.raises(InvalidInputError, match='prepare'):
        segmenter.query(frame, 'the red square')
    assert segmenter.query(segmenter.prepare(scene_rgb), 'the red square').found
