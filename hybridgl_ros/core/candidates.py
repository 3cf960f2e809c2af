"""The candidates of one query as the decision step (core/decision.py) reads them: s of every
mask, F of the method's candidates, which masks are the same object, near ties, sizes, the
relation's support and the confidence signals."""
from __future__ import annotations

import math

import torch

from hybridgl_ros.core import guidance as g
from hybridgl_ros.core import lookalikes as la
from hybridgl_ros.core import presence as ps

#: Capped s and F margins of a candidate with no other distinct candidate.
S_MARGIN_CAP = 20.0
F_MARGIN_CAP = 1.0
#: Recorded s margin to the nearest possible near tie of an answer with none (logits).
TIE_MARGIN_CAP = 100.0
#: Masks compared with one mask at a time when telling objects apart (bounds the memory).
SAME_OBJECT_CHUNK = 16


class CandidateView:
    """The candidates of one query with what the decision reads of them (CPU floats).

    s is known for every mask of the frame, F only for the method's candidates (the top-K by
    s, spec §10). "Other objects" are masks that are not the same object (IoU or overlap of
    the smaller one above ``lookalikes.SAME_OBJECT_OVERLAP``), looked for among all masks: a
    look-alike need not be among the top K when parts of the answer fill those places.
    """

    def __init__(self, scores, frame, match_margin: float, look_margin: float = 0.0,
                 aligned_first: bool = False, aligned_only: bool = False,
                 readings: torch.Tensor | None = None, aligned_margin: float = 0.0) -> None:
        self.scores = scores
        self.aligned_first = aligned_first
        # how much each mask reads as the look phrase rather than as its swaps (None: no swap)
        self.readings = None if readings is None else readings.detach().float().cpu().tolist()
        self.aligned_only = aligned_only
        self.aligned_margin = aligned_margin
        self.candidates = [int(c) for c in scores.candidates]
        s = scores.similarities.detach().float().cpu()
        self.s = s.tolist()
        self.s_top = float(s.max())
        self.look_margin = look_margin
        self._s_sum = math.fsum(self.s)
        self.standout = self.standout_of(int(s.argmax()))     # the best mask's
        final = scores.final.detach().float().cpu()
        self.f = {i: float(final[k]) for k, i in enumerate(self.candidates)}
        self.eligible = {i for i in self.candidates if self.s[i] >= self.s_top - match_margin}
        self._masks = frame.mask_tensor.reshape(len(self.s), -1)               # (N, HW)
        self._areas: torch.Tensor | None = None
        self._same: dict[int, torch.Tensor] = {}
        self._inter: dict[int, torch.Tensor] = {}
        self._partners: tuple[torch.Tensor, torch.Tensor, float] | None = None
        self.boxes = torch.as_tensor(frame.proposals.boxes_xywh, dtype=torch.float32)

    def by_f(self, by_look: bool = True) -> list[int]:
        """The candidates, highest F first (ties keep the candidates' order); with a look
        margin (and ``by_look``), those whose s is within it of the best mask's (the best mask
        is a candidate unless look-alikes replaced the top K; with none within it, all)."""
        plausible = [i for i in self.candidates if not by_look or self.look_margin <= 0
                     or self.s[i] >= self.s_top - self.look_margin]
        return sorted(plausible or self.candidates, key=lambda i: -self.f[i])

    def choose(self, must_hold: bool, by_look: bool = True) -> tuple[int, bool]:
        """(answer, relation fails): the best-F candidate, or the best one the relation holds
        for when it must hold; ``by_look``: among those within the look margin."""
        order = self.by_f(by_look)
        if not must_hold:
            return order[0], False
        holding = [i for i in order if i in self.eligible
                   and self.support(i, aligned=self.aligned_only) >= 0.5]
        if self.aligned_first and not self.aligned_only and len(holding) > 1:
            holding = self._aligned_first(holding)
        return (holding[0], False) if holding else (order[0], True)

    def _aligned_first(self, holding: list[int]) -> list[int]:
        """``holding`` (F's order) with the candidates lying mostly in the relation's
        direction first ("the star right of the blue star": the star straight to its right,
        not one far above it and a little to the right), each group in F's order. Moved ahead
        is only a candidate that matches the target about as well as F's pick (s within
        ``aligned_margin`` of its), reads as the target rather than as another object
        (``readings`` above one half: the crescent of a ring is no star), and is no part of F's
        pick nor of another candidate lying otherwise, nor of the relation's anchor (the part
        of a ball nearest the anchor is no other ball; a part of the anchor no other object)."""
        floor = self.s[holding[0]] - self.aligned_margin
        aligned = [i for i in holding if self.support(i, aligned=True) >= 0.5
                   and self.s[i] >= floor and not self._anchor_part(i)
                   and (self.readings is None or self.readings[i] > 0.5)]
        aligned = [i for i in aligned if not any(
            bool(self.same(i)[j]) for j in holding if j not in aligned)]
        return aligned + [i for i in holding if i not in aligned]

    def _anchor_part(self, i: int) -> bool:
        """Whether most of the relation's partner weight lies on masks that are one object
        with i (i a part of the anchor, or the anchor a part of i)."""
        partners, weights, total = self._partner_weights()
        same = self.same(i)[partners]
        return total > 0 and float(weights[same].sum()) >= 0.5 * total

    def support(self, i: int, aligned: bool = False) -> float:
        """Share of the relation's partner weight that i lies as said of (``aligned``:
        mostly in the said direction, ``guidance.aligned_factor``). The weight of
        partners that are i itself or a part of it counts against it: an object does not lie
        left of itself, so the anchor never answers its own relation ("the ball right of the
        cube" is not the cube, however little weight what lies left of it has)."""
        partners, weights, total = self._partner_weights()
        keep = ~self.itself(i)[partners]
        if not bool(keep.any()) or total <= 0:
            return 0.0
        factor = g.aligned_factor if aligned else g.pair_factor
        pair = factor(self.scores.plan.relation, self.boxes[[i]],
                      self.boxes[partners[keep]]).float()[0]             # (P,)
        return float((pair * weights[keep]).sum() / total)

    def _partner_weights(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(partners (P,), their weights (P,) as CPU floats, the weights' sum) of the
        relation, read once per query."""
        if self._partners is None:
            relation = self.scores.relation
            weights = relation.partner_weights.detach().float().cpu()
            self._partners = (relation.partners.cpu(), weights, float(weights.sum()))
        return self._partners

    def same(self, i: int) -> torch.Tensor:
        """(N,) bool: which masks are the same object as mask i (i itself included)."""
        if i not in self._same:
            inter, area = self._overlaps(i)
            self._same[i] = la.one_object(inter, area, area[i])
            self._same[i][i] = True
        return self._same[i]

    def itself(self, i: int) -> torch.Tensor:
        """(N,) bool: mask i and the masks that are mostly inside it (i or a part of i; not
        the masks that hold i, such as the table it stands on)."""
        inter, area = self._overlaps(i)
        mine = inter / area.clamp(min=1) > la.SAME_OBJECT_OVERLAP
        mine[i] = True
        return mine

    def _overlaps(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) pixels each mask shares with mask i, (N,) each mask's area (CPU floats)."""
        if i not in self._inter:
            # in chunks of masks: all N masks at once as floats could take gigabytes
            mine = self._masks[i] != 0
            self._inter[i] = torch.cat([((c != 0) & mine).sum(dim=1) for c in
                                        self._masks.split(SAME_OBJECT_CHUNK)]).float().cpu()
        return self._inter[i], self._mask_areas()

    def distinct(self, i: int, among: list[int] | None = None) -> list[int]:
        """The masks (of ``among``, default all) that are not the same object as i."""
        same = self.same(i)
        pool = range(len(self.s)) if among is None else among
        return [j for j in pool if not bool(same[j])]

    def near_ties(self, choice: int, cfg, guided: bool, must_hold: bool,
                  size_word: str = '') -> tuple[list[int], float]:
        """(other objects as good as the answer, the s margin to the nearest one that may be).

        By s among all masks (one mask per object, its best; highest s first) or, when a
        position or relation word should have told them apart, among the candidates whose F
        is within ``cfg.guided_ambiguity_margin`` (highest F first); a near tie's s is within
        ``cfg.ambiguity_margin`` of the answer's. Objects that ``size_word`` tells from the
        answer (:meth:`size_apart`) are none. The margin (capped at TIE_MARGIN_CAP) is the
        smallest ``ambiguity_margin`` that would flag the answer: ``hybridgl calibrate`` fits
        it on the single-target answers."""
        def apart(j: int) -> bool:
            return bool(size_word) and self.size_apart(choice, j, size_word,
                                                       cfg.size_apart_ratio)

        if guided:
            pool = sorted((j for j in self.distinct(choice, self.candidates)
                           if self.f[choice] - self.f[j] <= cfg.guided_ambiguity_margin
                           and not (must_hold and (j not in self.eligible
                                                   or self.support(j) < 0.5))
                           and not apart(j)), key=lambda j: -self.f[j])
        else:
            pool = sorted((j for j in self.distinct(choice) if not apart(j)),
                          key=lambda j: -self.s[j])
        margin = min([TIE_MARGIN_CAP, *(self.s[choice] - self.s[j] for j in pool)])
        close = [j for j in pool if self.s[choice] - self.s[j] <= cfg.ambiguity_margin]
        if guided:
            return close, margin
        ties: list[int] = []
        for j in close:
            if not any(bool(self.same(k)[j]) for k in ties):
                ties.append(j)
        return ties, margin

    def area(self, i: int) -> float:
        """Mask i's area in pixels."""
        return float(self._mask_areas()[i])

    def _mask_areas(self) -> torch.Tensor:
        """(N,) each mask's area (CPU floats; counted once, in chunks of masks)."""
        if self._areas is None:
            self._areas = torch.cat([(c != 0).sum(dim=1) for c in
                                     self._masks.split(SAME_OBJECT_CHUNK)]).float().cpu()
        return self._areas

    def size_apart(self, i: int, j: int, word: str, ratio: float) -> bool:
        """Whether the size word ('small', 'big' or '') tells answer i from object j: i's mask
        is more than ``ratio`` times smaller than j's for 'small', larger for 'big'."""
        if word == 'small':
            return self.area(i) * ratio < self.area(j)
        if word == 'big':
            return self.area(i) > ratio * self.area(j)
        return False

    def standout_of(self, i: int) -> float:
        """Mask i's s minus the mean s of the frame's other masks (0 for a lone mask)."""
        return ps.standout(self.s, self._s_sum, i)

    def confidence_x(self, i: int, guided: bool, fails: bool) -> list[float]:
        """(s, s margin to the best other object, guided, F margin to the best other
        candidate, relation fails) of mask i (F margin -F_MARGIN_CAP off the candidates)."""
        s_margin = self.s[i] - max((self.s[j] for j in self.distinct(i)), default=-math.inf)
        if i in self.f:
            f_margin = self.f[i] - max((self.f[j] for j in self.distinct(i, self.candidates)),
                                       default=-math.inf)
        else:
            f_margin = -F_MARGIN_CAP
        return [self.s[i], min(s_margin, S_MARGIN_CAP), float(guided),
                max(min(f_margin, F_MARGIN_CAP), -F_MARGIN_CAP), float(fails)]
