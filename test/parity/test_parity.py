"""Parity with the authors' released code, mask for mask (spec §12, issue 9).

Every quantity of the fixture README's table within its tolerance, the exact ones equal, and
``chosen_idx`` equal on every comparable query — in ``parity='reference'``, and in the default
mode wherever the spec does not depart (the 'right' relation, whitespace runs, vertical ramps,
size and position words judged among look-alikes: README "Where the default mode departs"; a
query whose q or reading of the text the default mode changes, by ``guidance.anchor_by_words``,
``text.everyday_phrasing`` or ``guidance.direction_from_relation``, is compared with those
off). The cases are the dump's, whichever it holds: a larger one with cases this repository
has not seen runs the same rules.
Designed differences (spec §12 bug 4: the empty sentence, a full-image mask, a zero-area box,
more than 77 tokens): only what the reference computed before its failure is compared, and the
project must give finite scores and a clear refusal of the empty text.
"""
import math

import numpy as np
import pytest
import torch

import parity_support as ps

from hybridgl_ros.core.guidance import POSITION_RELATIONS, plan_guidance, select_candidates
from hybridgl_ros.core.text import read_synonyms

DUMP = ps.load_dump(ps.fixture_dir())
CASE_IDS = sorted(DUMP['cases'])
QUERIES = [(case_id, index) for case_id in CASE_IDS
           for index in range(len(DUMP['cases'][case_id]['queries']))]

# Tolerances of the fixture README.
SCORE_ABS = 2e-4        # s
PROB_ABS = 1e-5         # p, q, R, R_softmax
SPATIAL_ABS = 1e-4      # S, F and the pooled maps
TOKEN_ABS = 1e-6        # token masks
NORM_REL = 1e-5         # feature and text norms
COS_ABS = 1e-5          # feature cosine matrix
IMAGE_ABS = 1e-5        # 224 px mask-image statistics


def _close(ours, reference, atol, what):
    """Elementwise |ours − reference| <= atol where the reference is a number; where it is NaN
    (a designed difference), ours must be finite."""
    ours = np.asarray(ours, np.float64)
    reference = np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, f'{what}: shape {ours.shape} != {reference.shape}'
    nan = np.isnan(reference)
    assert np.isfinite(ours).all(), f'{what}: not finite: {ours}'
    diff = np.abs(ours - reference)[~nan]
    ps.record(what, float(diff.max()) if diff.size else 0.0, atol)
    assert diff.size == 0 or diff.max() <= atol, (
        f'{what}: max |diff| {diff.max():.3g} > {atol:g}\n ours {ours}\n ref  {reference}')


def _rel_close(ours, reference, rtol, what):
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    rel = np.abs(ours / reference - 1)
    ps.record(what, float(rel.max()), rtol, relative=True)
    assert rel.max() <= rtol, f'{what}: max relative diff {rel.max():.3g} > {rtol:g}'


def _has_nan(values) -> bool:
    return values is not None and any(isinstance(v, float) and math.isnan(v) for v in values)


# ------------------------------------------------------------------------------- inputs
def test_the_weights_are_the_shared_recipe(parity):
    assert parity.weights_digest == parity.weights.DIGEST_SEED0
    assert DUMP['meta']['weights']['digest_sha256'] == parity.weights.DIGEST_SEED0


@pytest.mark.parametrize('case_id', CASE_IDS)
def test_the_cases_are_the_dumps(parity, case_id):
    case, reference = parity.case(case_id), DUMP['cases'][case_id]
    digest = parity.cases.case_digest(case)
    assert digest['image_sha256'] == reference['image_sha256']
    assert digest['mask_sha256'] == [p['mask_sha256'] for p in reference['proposals']]
    assert [p['bbox'] for p in case.proposals] == [
        [int(v) for v in box] for box in reference['visual']['boxes_seen_by_reference']]


# ------------------------------------------------------------------------------- per image
@pytest.mark.parametrize('case_id', CASE_IDS)
def test_mask_inputs_and_features_match(parity, case_id):
    run, visual = parity.run(case_id), DUMP['cases'][case_id]['visual']
    _close(run.token_masks, visual['token_masks_14x14'], TOKEN_ABS, 'token masks')
    assert (run.token_masks != 0).sum(axis=1).tolist() == visual['token_mask_nonzero']
    for name, images in (('local', run.local_images), ('global', run.global_images)):
        stats = visual[f'{name}_img_stats']
        _close(images.mean(axis=(2, 3)), [s['mean'] for s in stats], IMAGE_ABS, f'{name} mean')
        _close(images.std(axis=(2, 3), ddof=1), [s['std'] for s in stats], IMAGE_ABS,
               f'{name} std')
        _close(ps.pool(images, 4), [s['pool4'] for s in stats], IMAGE_ABS, f'{name} pool4')
    features = run.frame.mask_features.numpy().astype(np.float64)
    norms = np.linalg.norm(features, axis=1)
    _rel_close(norms, visual['feature_norms'], NORM_REL, 'feature norms')
    unit = features / norms[:, None]
    _close(unit @ unit.T, visual['feature_cos_matrix'], COS_ABS, 'feature cosine matrix')


# ------------------------------------------------------------------------------- per query
def _parse_fields(explanation) -> dict:
    parse = explanation.parse
    return {'normalised': parse.normalized, 'head_np': parse.head_phrase,
            'other_nps': list(parse.other_phrases), 'relaflag': explanation.relation,
            'dirflag': explanation.direction}


def _compare_parse(explanation, reference, skip=()):
    for name, value in _parse_fields(explanation).items():
        if name in reference and name not in skip:
            assert value == reference[name], f'{name}: {value!r} != {reference[name]!r}'


def _compare_text(explanation, reference):
    features = explanation.text_features
    text = reference.get('text_features') or {}
    for ours, theirs in (('sentence', 'sentence'), ('head', 'head_np')):
        if theirs in text:
            _rel_close(np.linalg.norm(features[ours]), text[theirs]['norm'], NORM_REL,
                       f'E({theirs}) norm')
    if reference.get('t_norm') is not None:
        _rel_close(np.linalg.norm(features['target']), reference['t_norm'], NORM_REL, 't norm')
    if reference.get('u_norm'):
        _rel_close(np.linalg.norm(features['other']), reference['u_norm'], NORM_REL, 'u norm')


def _same_ranking(ours, theirs, values, atol, what):
    """Two top-k index lists are the same ranking: equal, or different only where the values
    (ours) they rank tie within ``atol`` — a mask proposed twice has two p (or q) that differ
    by the float rounding of their batch, and their order is that noise, in the reference as
    here."""
    assert len(ours) == len(theirs), f'{what}: {ours} != {theirs}'
    values = np.asarray(values, np.float64)
    assert all(abs(values[i] - values[j]) <= atol for i, j in zip(ours, theirs)), (
        f'{what}: {ours} != {theirs} (values {values[ours]} / {values[theirs]})')


def _compare_matching(e, reference, partners=True, lookalike_candidates=False):
    """s, p, q, the candidates and (unless ``partners`` is False: judged among look-alikes,
    the partners are the candidates) the partners. With ``lookalike_candidates`` (a position
    word judged among look-alikes, default mode) the candidates are every look-alike
    (``guidance.lookalike_margin``), so only the spec's top-K of the same p is compared."""
    _close(e.similarities, reference['s'], SCORE_ABS, 's')
    _close(e.matching_probs, reference['p'], PROB_ABS, 'p')
    assert e.pure_index == reference['pure_idx']
    top = select_candidates(torch.as_tensor(e.matching_probs), reference['k1']).tolist()
    _same_ranking(top, reference['top_idx'], e.matching_probs, PROB_ABS, 'top-k by p')
    if not lookalike_candidates:
        _same_ranking(e.candidates.tolist(), reference['top_idx'], e.matching_probs, PROB_ABS,
                      'candidates')
        assert len(e.candidates) == reference['k1']
    if not partners:
        assert e.partners.tolist() == e.candidates.tolist()
        if reference.get('q') is not None:
            _close(e.other_probs, reference['q'], PROB_ABS, 'q')
    elif reference.get('q') is not None:
        _close(e.other_probs, reference['q'], PROB_ABS, 'q')
        _same_ranking(e.partners.tolist(), reference['top_other_idx'], e.other_probs, PROB_ABS,
                      'partners')
        assert len(e.partners) == reference['k2']
        assert reference['partner_branch'].startswith('top_k2')
    else:
        assert e.other_probs is None and reference['partner_branch'].startswith('candidates')
        assert e.partners.tolist() == e.candidates.tolist()


def _compare_relation(e, reference):
    _close(e.relation_totals, reference['R'], PROB_ABS, 'R')
    _close(e.relation_probs, reference['R_softmax'], PROB_ABS, 'softmax(R)')


def _compare_maps(e, reference, height, width):
    assert e.parse.head_phrase in reference['gem_text']
    _close(ps.pool(e.coherence_input_map, 16), reference['gem_448']['pool16'], SPATIAL_ABS,
           'GEM map at 448')
    # The dump records the resized map before its second min-max; pooling is linear.
    resized = reference['gem_resized']
    span = resized['max'] - resized['min']
    expected = (np.asarray(resized['pool16']) - resized['min']) / span
    _close(ps.pool(e.coherence_map, 16), expected, SPATIAL_ABS, 'GEM map at H x W')
    ramp_row = e.position_ramp[0]
    _close([ramp_row[0], ramp_row[width // 2], ramp_row[-1]],
           reference['pmask']['row0_first_mid_last'], 1e-6, 'position ramp')
    assert e.guidance_map.shape == (height, width)
    _close(ps.pool(e.guidance_map, 16), reference['A']['pool16'], SPATIAL_ABS, 'A')


def _compare_choice(e, reference, case, compare_relation=True):
    """S and F, and the chosen mask: its index, or another copy of the same pixels (two
    proposals one mask: their p differ by float rounding only, in either direction)."""
    _close(e.spatial_scores, reference['S'], SPATIAL_ABS, 'S')
    if compare_relation:
        _close(e.final_scores, reference['F'], SPATIAL_ABS, 'F')
        if reference['ok'] and not _has_nan(reference['F']):
            digests = [proposal['mask_sha256'] for proposal in case['proposals']]
            same = digests[e.chosen] == digests[reference['chosen_idx']]
            ps.record_choice(same)
            assert same, f"chosen mask {e.chosen} != {reference['chosen_idx']}"


def _query(parity, case_id, index, mode):
    """(the case's dump, the reference query, the project's explanation), or None after
    checking the designed difference of an empty text: a clear refusal, not a crash."""
    from hybridgl_ros.core.errors import InvalidInputError

    case = DUMP['cases'][case_id]
    reference, result = case['queries'][index], parity.run(case_id).results[mode, index]
    if not reference['sentence_raw'].strip() and (mode != 'reference' or not reference['ok']):
        # the default mode refuses any text of whitespace alone; parity mode what the released
        # code crashes on ("", " "), and answers a longer run of whitespace as it does
        assert isinstance(result, InvalidInputError) and 'empty' in str(result)
        return None
    return case, reference, result


def _failed_before_scoring(reference, result) -> bool:
    """Whether the reference failed before scoring: more than 77 tokens in the text (no s), or
    in a prompt built from it, "a photo of" its anchor phrase (s, then a failure before p);
    then the project must answer, saying it truncated, with finite scores."""
    failed_on_a_prompt = reference.get('p') is None and not reference.get('ok', True)
    if reference.get('s') is not None and not failed_on_a_prompt:
        return False
    assert 'truncated' in result.message
    assert np.isfinite(result.explanation.final_scores).all()
    return True


def _reading(e) -> tuple:
    """What the text was read as: normalised text, phrases, relation and direction."""
    return (e.parse.normalized, e.parse.head_phrase, tuple(e.parse.other_phrases), e.relation,
            e.direction)


@pytest.mark.parametrize('case_id, index', QUERIES)
def test_reference_mode_matches_query_for_query(parity, case_id, index):
    found = _query(parity, case_id, index, 'reference')
    if found is None:
        return
    case, reference, result = found
    e = result.explanation
    _compare_parse(e, reference)
    if reference.get('beta') is not None:
        assert e.beta == pytest.approx(reference['beta'])
    _compare_text(e, reference)
    if _failed_before_scoring(reference, result):
        return
    _compare_matching(e, reference)
    _compare_relation(e, reference)
    _compare_maps(e, reference, case['height'], case['width'])
    _compare_choice(e, reference, case)


@pytest.mark.parametrize('case_id, index', QUERIES)
def test_default_mode_matches_where_the_spec_agrees(parity, case_id, index):
    found = _query(parity, case_id, index, 'default')
    if found is None:
        return
    case, reference, result = found
    spec = parity.run(case_id).results[ps.SPEC_Q, index]
    if isinstance(result, Exception):
        pass
    elif _reading(result.explanation) != _reading(spec.explanation):
        # the default mode reads the text its own way (everyday phrasing: "find the red ball.",
        # "the hat, she said" with no anchor 'she'; "the ball below" also sets the ramp;
        # README): compared with the spec's reading, where the departures are off
        result = spec
    elif result.explanation.text_features.get('other_words') is not None:
        # q reads the anchor phrase's look words (guidance.anchor_by_words, README): s, p and
        # the candidates do not depend on q (the same up to the text batch's rounding), and
        # with that departure off the default mode is the spec's everywhere else
        np.testing.assert_allclose(result.explanation.similarities,
                                   spec.explanation.similarities, rtol=0, atol=SCORE_ABS)
        assert result.explanation.candidates.tolist() == spec.explanation.candidates.tolist()
        assert spec.explanation.text_features.get('other_words') is None
        result = spec
    e = result.explanation
    if e.parse.normalized != reference['normalised']:
        # whitespace runs (spec §5.1) and other words for position and size read as the
        # spec's ("the smallest circle" as "the smaller circle"; text.spatial_synonyms)
        assert read_synonyms(' '.join(reference['normalised'].split())) == e.parse.normalized
        return
    config = parity.configs['default'].guidance
    # 'right' works here (bug 1); the reference has no relaflag where it failed before it
    same_relation = e.relation == reference.get('relaflag')
    same_ramp = not (config.vertical_ramps and e.direction in ('up', 'down'))   # bug 3
    # bigger/smaller or left/right/top/bottom without an anchor phrase: R (and for sizes S) are
    # the default mode's own, judged among look-alikes (README)
    comparative = plan_guidance(e.parse, config).lookalike_relation != 'none'
    _compare_parse(e, reference, skip=('relaflag',))
    _compare_text(e, reference)
    if _failed_before_scoring(reference, result):
        return
    _compare_matching(e, reference, partners=not comparative,
                      lookalike_candidates=e.lookalike_relation in POSITION_RELATIONS)
    if same_relation and not comparative:
        _compare_relation(e, reference)
    if same_ramp:
        _compare_maps(e, reference, case['height'], case['width'])
        if not comparative:
            _compare_choice(e, reference, case, compare_relation=same_relation)


def test_every_designed_difference_gives_finite_scores(parity):
    for case_id, index in QUERIES:
        reference = DUMP['cases'][case_id]['queries'][index]
        if reference['ok'] and not _has_nan(reference.get('S')) and not _has_nan(
                reference.get('R')):
            continue
        for mode in ('reference', 'default'):
            result = parity.run(case_id).results[mode, index]
            if isinstance(result, Exception):
                continue  # the empty text: checked as a refusal above
            e = result.explanation
            for values in (e.spatial_scores, e.relation_totals, e.final_scores):
                assert np.isfinite(values).all(), (case_id, index, mode)
