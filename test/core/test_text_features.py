"""Text features without the padding: the same features for a fraction of the work."""
import torch

from hybridgl_ros.core.models import text_tokenizer
from hybridgl_ros.core.text_features import TextEncoder, encode_text_unpadded


def test_unpadded_text_features_equal_open_clips_to_float_rounding(tiny_clip):
    tokens = text_tokenizer(tiny_clip)(['the red square', 'a photo of a the red square .',
                                        'the blue disc right of the red square', ''])
    with torch.inference_mode():
        expected, got = tiny_clip.encode_text(tokens), encode_text_unpadded(tiny_clip, tokens)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_text_filling_the_whole_context_is_encoded_in_full(tiny_clip):
    tokens = text_tokenizer(tiny_clip)([' '.join(['square'] * 200)])
    with torch.inference_mode():
        assert torch.equal(encode_text_unpadded(tiny_clip, tokens), tiny_clip.encode_text(tokens))


def test_the_encoder_returns_float32_features_in_the_order_asked(tiny_clip):
    encoder = TextEncoder(tiny_clip, text_tokenizer(tiny_clip))
    both = encoder.encode(['the disc', 'the square'])
    assert both.dtype == torch.float32
    assert torch.equal(encoder.encode(['the square'])[0], both[1])
