"""CLIP text features E(x) (spec §5.4), cached by string."""
from __future__ import annotations

import string
from collections import OrderedDict
from typing import Sequence

from hybridgl_ros.core.text import GENERIC_WORDS, SPATIAL_WORDS

PUNCTUATION = string.punctuation + '“”‘’'
#: Words that name nothing on their own (an expression of only these names no object).
FUNCTION_WORDS = frozenset({
    'the', 'a', 'an', 'this', 'that', 'these', 'those', 'of', 'to', 'in', 'on', 'at', 'by',
    'and', 'or', 'it', 'its', 'is', 'with', 'for', 'from', 'please', 'me', 'my'})


def named_words(text: str) -> list[str]:
    """The words of ``text`` that may name something: lower-cased, without punctuation, not
    function words."""
    words = (w.strip(PUNCTUATION).lower() for w in text.split())
    return [w for w in words if w and w not in FUNCTION_WORDS]


class TextEncoder:
    """E(x): the CLIP text feature of a string, (D,) float32, NOT normalised.

    Text longer than the model's context (77 tokens for CLIP) is truncated, keeping the
    end-of-text token; :meth:`is_truncated` tells whether that happened.

    Args:
        model: an open_clip CLIP on its device.
        tokenizer: open_clip's tokenizer at the model's context length.
        cache_size: features kept, least recently used dropped first.
        autocast_dtype: autocast dtype on CUDA, or None for fp32.
    """

    def __init__(self, model, tokenizer, cache_size: int = 256, autocast_dtype=None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cache_size = cache_size
        self._autocast_dtype = autocast_dtype
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._known = None

    @property
    def context_length(self) -> int:
        return int(self.tokenizer.context_length)

    def is_truncated(self, text: str) -> bool:
        """Whether ``text`` has more tokens than the context holds (with start/end tokens)."""
        return len(self.tokenizer.encode(text)) + 2 > self.context_length

    def content_words(self, text: str, limit: int = 6) -> list[str]:
        """The words of a noun phrase that say what the object looks like ("red", "ball" of
        "the smaller red ball"): not function words, punctuation, relation or position words
        (:data:`~hybridgl_ros.core.text.RELATION_WORDS`, the direction triggers) or generic
        nouns ("one", "thing"), and made of tokens the model knows; at most ``limit``, in
        order, each once."""
        words = [w for w in dict.fromkeys(named_words(text))
                 if w not in SPATIAL_WORDS and w not in GENERIC_WORDS and self._knows(w)]
        return words[:limit]

    def knows_a_word(self, text: str) -> bool:
        """Whether a content word of ``text`` (not a function word, not punctuation) is made of
        tokens the model has embeddings for (rows of its token table that are not all zero).

        A real CLIP has an embedding for every token, so this is "does the text name
        anything"; a model trained on a small vocabulary (the demo CLIP) keeps unseen words'
        rows at zero, and a phrase of such words names nothing it knows.
        """
        return any(self._knows(w) for w in named_words(text))

    def _knows(self, word: str) -> bool:
        """Whether every token of ``word`` has an embedding row that is not all zero (always
        true without a token table)."""
        known = self._known_tokens()
        return known is None or all(known[t] for t in self.tokenizer.encode(word))

    def _known_tokens(self):
        """(vocab,) bool: the token rows that are not all zero (None without a token table)."""
        table = getattr(self.model, 'token_embedding', None)
        if table is None or not hasattr(self.tokenizer, 'encode'):
            return None
        if self._known is None:
            self._known = (table.weight.detach().abs().amax(dim=1) > 0).cpu().tolist()
        return self._known

    def encode(self, texts: Sequence[str]):
        """(B, D) float32 features of ``texts``, computing only the uncached ones in one batch."""
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            features = self._forward(missing)
            for text, feature in zip(missing, features):
                self._cache[text] = feature
        out = []
        for text in texts:
            self._cache.move_to_end(text)
            out.append(self._cache[text])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return torch.stack(out)

    def _forward(self, texts: list[str]):
        import contextlib

        import torch

        device = next(self.model.parameters()).device
        tokens = self.tokenizer(texts).to(device)  # (B, context)
        autocast = (torch.autocast(device.type, dtype=self._autocast_dtype)
                    if self._autocast_dtype is not None else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            features = encode_text_unpadded(self.model, tokens)
        return features.float()


def encode_text_unpadded(model, tokens):
    """``model.encode_text(tokens)`` without the padding after the batch's last end token.

    CLIP's text transformer is causal and reads its feature at the end-of-text token (the
    highest token id), so positions after it never influence the result: running only up to
    the batch's last end token gives the same features (to float rounding) for a fraction of
    the work: a 10-word expression has 12 of the 77 positions. Models whose text tower is not
    open_clip's built-in causal one are run as they are.

    Args:
        model: an open_clip CLIP.
        tokens: (B, context) int64, from the model's tokenizer.

    Returns:
        (B, D) text features, not normalised.
    """
    import torch

    from open_clip.transformer import text_global_pool

    plain = (getattr(model, 'text_pool_type', None) == 'argmax'
             and getattr(model, 'attn_mask', None) is not None
             and hasattr(model, 'token_embedding'))
    if not plain:
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)  # (B, length, width)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = text_global_pool(x, tokens, 'argmax')  # (B, width)
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
