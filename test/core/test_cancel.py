"""Cooperative cancellation: the token, and HybridGL.prepare stopping between its stages."""
import threading

import numpy as np
import pytest

from hybridgl_ros.core.cancel import Cancelled, CancelToken, check
from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import HybridGLError
from hybridgl_ros.core.pipeline import HybridGL
from hybridgl_ros.core.types import Proposals


class CountingProposer:
    """Proposes a few rectangles; can cancel a token when it runs (a cancel mid-stage)."""

    def __init__(self, count=5, cancel=None):
        self.count, self.cancel, self.calls = count, cancel, 0

    def propose(self, image_rgb):
        self.calls += 1
        if self.cancel is not None:
            self.cancel.cancel('canceled while SAM ran')
        h, w = image_rgb.shape[:2]
        masks = np.zeros((self.count, h, w), bool)
        for i in range(self.count):
            masks[i, 10 * i:10 * i + 20, 5:40] = True
        boxes = np.array([[5, 10 * i, 35, 20] for i in range(self.count)], np.int64)
        return Proposals(masks, boxes, np.ones(self.count, np.float32))


def _segmenter(tiny_clip, spacy_parser, proposer, **flat):
    return HybridGL(HybridGLConfig.from_flat(flat), clip_model=tiny_clip, proposer=proposer,
                    parser=spacy_parser)


def test_token_raises_cancelled_with_the_first_reason_once_set():
    token = CancelToken()
    token.check()
    check(None)
    token.cancel('first')
    token.cancel('second')
    with pytest.raises(Cancelled, match='first'):
        token.check()
    assert token.cancelled and token.reason == 'first'
    assert issubclass(Cancelled, HybridGLError)


def test_token_wait_wakes_when_canceled_from_another_thread():
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    assert token.wait(10.0)


def test_prepare_with_a_canceled_token_never_runs_sam(tiny_clip, spacy_parser, scene_rgb):
    proposer = CountingProposer()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        _segmenter(tiny_clip, spacy_parser, proposer).prepare(scene_rgb, cancel=token)
    assert proposer.calls == 0


def test_cancel_during_sam_stops_before_the_mask_features(tiny_clip, spacy_parser, scene_rgb):
    token = CancelToken()
    segmenter = _segmenter(tiny_clip, spacy_parser, CountingProposer(cancel=token))
    encoded = []
    original = segmenter.encoder.encode_inputs
    segmenter.encoder.encode_inputs = lambda inputs: encoded.append(1) or original(inputs)
    with pytest.raises(Cancelled, match='while SAM ran'):
        segmenter.prepare(scene_rgb, cancel=token)
    assert not encoded


def test_cancel_between_feature_chunks_stops_the_encoder(tiny_clip, spacy_parser, scene_rgb):
    token = CancelToken()
    segmenter = _segmenter(tiny_clip, spacy_parser, CountingProposer(count=6),
                           **{'features.mask_batch_size': 2})
    chunks = []
    original = segmenter.encoder.encode_inputs

    def encode_and_cancel(inputs):
        chunks.append(1)
        token.cancel('canceled after a chunk')
        return original(inputs)

    segmenter.encoder.encode_inputs = encode_and_cancel
    with pytest.raises(Cancelled, match='after a chunk'):
        segmenter.prepare(scene_rgb, cancel=token)
    assert len(chunks) == 1          # of 3 chunks


def test_prepare_without_a_token_is_unchanged(tiny_clip, spacy_parser, scene_rgb):
    segmenter = _segmenter(tiny_clip, spacy_parser, CountingProposer())
    a = segmenter.prepare(scene_rgb)
    b = segmenter.prepare(scene_rgb, cancel=CancelToken())
    assert np.array_equal(a.mask_features.numpy(), b.mask_features.numpy())


def test_cancel_during_sam_image_encoder_stops_before_its_next_block(scene_rgb):
    from hybridgl_ros.core.pipeline import HybridGL

    segmenter = HybridGL.from_config(HybridGLConfig())          # the embedded demo models
    blocks = segmenter.proposer.sam.image_encoder.blocks
    token, later = CancelToken(), []
    first = blocks[0].register_forward_hook(lambda *_: token.cancel('canceled inside SAM'))
    second = blocks[1].register_forward_hook(lambda *_: later.append(1))
    try:
        with pytest.raises(Cancelled, match='inside SAM'):
            segmenter.prepare(scene_rgb, cancel=token)
    finally:
        first.remove()
        second.remove()
    assert not later
    assert not blocks[1]._forward_pre_hooks              # the checks are gone afterwards
