"""Expressions that name nothing the embedded demo CLIP knows are answered "not found"."""
import pytest
import torch

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.models import load_clip, text_tokenizer
from hybridgl_ros.core.text_features import TextEncoder


@pytest.fixture(scope='module')
def encoder():
    model = load_clip(HybridGLConfig().models, torch.device('cpu'))
    return TextEncoder(model, text_tokenizer(model))


@pytest.mark.parametrize('text', ['the elephant', 'the the of', '?!.,;', 'a mug', '🙂'])
def test_words_outside_the_vocabulary_and_function_words_name_nothing(encoder, text):
    assert not encoder.knows_a_word(text)


@pytest.mark.parametrize('text', ['the red ball', 'cube', 'the smaller star', 'the bottom one'])
def test_the_demo_vocabulary_names_something(encoder, text):
    assert encoder.knows_a_word(text)


@pytest.mark.parametrize('text, words', [
    ('the smaller red ball', ['red', 'ball']),
    ('the small green star', ['small', 'green', 'star']),
    ('the ball on the left', ['ball']), ('the red one', ['red']), ('the bottom cube', ['cube']),
    ('the elephant', []), ('the red, red ball!', ['red', 'ball'])])
def test_the_look_words_of_a_phrase_leave_out_position_generic_and_unknown_words(
        encoder, text, words):
    assert encoder.content_words(text) == words
