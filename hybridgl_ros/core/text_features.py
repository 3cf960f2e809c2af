"""CLIP text features E(x) (spec §5.4), cached by string."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence


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

    @property
    def context_length(self) -> int:
        return int(self.tokenizer.context_length)

    def is_truncated(self, text: str) -> bool:
        """Whether ``text`` has more tokens than the context holds (with start/end tokens)."""
        return len(self.tokenizer.encode(text)) + 2 > self.context_length

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
        import torch

        device = next(self.model.parameters()).device
        tokens = self.tokenizer(texts).to(device)  # (B, context)
        with torch.inference_mode():
            if self._autocast_dtype is not None:
                with torch.autocast(device.type, dtype=self._autocast_dtype):
                    features = self.model.encode_text(tokens)
            else:
                features = self.model.encode_text(tokens)
        return features.float()
