"""Hand-built frames, scores and text features for the decision tests (core/decision.py,
core/presence.py): four masks on a 40 x 120 frame and a calibration whose readings are easy to
follow."""
from dataclasses import replace

import numpy as np
import torch

from hybridgl_ros.core import guidance as g
from hybridgl_ros.core.config import PRESENCE_SIGNALS, DecisionConfig, HybridGLConfig
from hybridgl_ros.core.scoring import QueryScores, TextFeatures
from hybridgl_ros.core.types import Frame, ParsedExpression, Proposals

H, W = 40, 120
#: Three disjoint 20x20 squares at x = 10, 50, 90 and a mask that is the first one's left half.
BOXES = [[10, 10, 20, 20], [50, 10, 20, 20], [90, 10, 20, 20], [10, 10, 10, 20]]


def presence_weights(values: dict[int, float]) -> tuple[float, ...]:
    """P(present) weights for every signal: ``values`` at their signals' positions in
    ``presence_x``, 0 elsewhere."""
    weights = [0.0] * PRESENCE_SIGNALS
    for index, value in values.items():
        weights[index] = value
    return tuple(weights)


#: P(present) = σ(s_top − 40): present above s = 40; P(right) = σ(0.5·s margin).
CALIBRATION = DecisionConfig(presence_weights=presence_weights({0: 1.0, 3: -30.0}),
                             presence_bias=-40.0,
                             confidence_weights=(0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0),
                             confidence_bias=0.0, ambiguity_margin=3.0,
                             guided_ambiguity_margin=0.05, calibrated_for='x')


def frame(boxes=BOXES):
    masks = np.zeros((len(boxes), H, W), bool)
    for k, (x, y, w, h) in enumerate(boxes):
        masks[k, y:y + h, x:x + w] = True
    return Frame((H, W), Proposals(masks, np.asarray(boxes, np.int64),
                                   np.ones(len(boxes), np.float32)),
                 mask_features=torch.eye(len(boxes), 8),
                 mask_tensor=torch.from_numpy(masks).float())


def scores(s, final, relation='none', direction='none', q=None, partners=None, weights=None):
    """QueryScores with the given s (N,) and F (per candidate, candidates = top-3 by s)."""
    s = torch.tensor(s, dtype=torch.float32)
    p = torch.softmax(s, 0)
    candidates = g.select_candidates(p, 3)
    final = torch.tensor(final, dtype=torch.float32)
    if partners is None:
        partners, weights = candidates, p[candidates]
    totals = g.RelationTotals(torch.as_tensor(partners), torch.as_tensor(weights).float(),
                              torch.zeros(len(candidates)))
    plan = g.GuidancePlan(relation, direction, False, True, 1.8)
    return QueryScores(plan, s, p, q, candidates, totals, torch.softmax(totals.totals, 0), None,
                       None, torch.ones(H, W), torch.ones(H, W), torch.zeros(len(s)), final)


def text(other=False):
    feature = torch.ones(8)
    return TextFeatures(feature, feature, feature, feature, feature if other else None)


def config(**decision):
    return HybridGLConfig(decision=replace(CALIBRATION, **decision))


PARSE = ParsedExpression('the elephant', 'the elephant')
