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


def test_the_contrasts_swap_the_look_phrases_colour_and_object_words_the_model_knows(encoder):
    """"the smaller red cube": the look phrase drops the size word; "pink", "brown", "black",
    "white" and "gray" of the default colours are outside the demo CLIP's vocabulary."""
    from hybridgl_ros.core.scoring import contrast_phrases, look_phrase, text_features
    from hybridgl_ros.core.types import ParsedExpression

    config = HybridGLConfig()
    parse = ParsedExpression('the smaller red cube', 'the smaller red cube')
    assert look_phrase(parse) == 'the red cube'
    colours = contrast_phrases('the red cube', config.decision.contrast_colours,
                               encoder.knows_a_word)
    assert colours == [f'the {c} cube' for c in ('orange', 'yellow', 'green', 'blue', 'purple')]
    objects = contrast_phrases('the red cube', config.decision.contrast_objects,
                               encoder.knows_a_word)
    assert objects == [f'the red {o}' for o in ('ball', 'triangle', 'star', 'ring')]
    text = text_features(encoder, parse, config)
    assert text.contrast_counts == (5, 4) and text.contrast.shape[0] == 10
    assert text.contrast_phrases == tuple(colours + objects)
    assert torch.allclose(text.contrast[0], encoder.encode(['the red cube'])[0])
    assert torch.allclose(text.contrast[-1], encoder.encode(['the red ring'])[0])
    # a phrase with no colour or object word of the vocabularies has no contrast
    none = text_features(encoder, ParsedExpression('the thing', 'the thing'), config)
    assert none.contrast is None and none.contrast_counts == (0, 0)
    # the words of the other features are where they were
    assert torch.allclose(text.words, encoder.encode(['red', 'cube']))


def test_the_anchors_look_words_and_contrasts_are_in_the_text_features(encoder):
    """"the ring left of the blue ball": q reads "blue" and "ball" (default mode), P(present)
    the anchor's look and its swaps; an anchor of unknown words is said to name nothing."""
    from hybridgl_ros.core.scoring import text_features
    from hybridgl_ros.core.types import ParsedExpression

    config = HybridGLConfig()
    parse = ParsedExpression('the ring left of the blue ball', 'the ring', ('the blue ball',),
                             relation='left')
    text = text_features(encoder, parse, config)
    assert len(text.other_words) == 1
    assert torch.allclose(text.other_words[0], encoder.encode(['blue', 'ball']))
    assert text.anchor_contrast_counts == (5, 4) and text.anchor_contrast.shape[0] == 10
    assert torch.allclose(text.anchor_contrast[0], encoder.encode(['the blue ball'])[0])
    assert text.anchor_names_known_word
    # the target's contrasts are its own rows only, not the anchor's after them in the batch
    red = text_features(encoder, ParsedExpression(
        'the red ring left of the blue ball', 'the red ring', ('the blue ball',),
        relation='left'), config)
    assert red.contrast_counts == (5, 4) and red.contrast.shape[0] == 10
    assert torch.allclose(red.contrast[-1], encoder.encode(['the red star'])[0])
    assert torch.allclose(red.anchor_contrast[0], encoder.encode(['the blue ball'])[0])
    # parity mode keeps the spec's q: no anchor words
    reference = HybridGLConfig.from_flat({'parity': 'reference'})
    assert text_features(encoder, parse, reference).other_words == ()
    unknown = ParsedExpression('the ring left of the elephant', 'the ring', ('the elephant',),
                               relation='left')
    text = text_features(encoder, unknown, config)
    assert not text.anchor_names_known_word and text.other_words == ()
    assert text.anchor_contrast is None
