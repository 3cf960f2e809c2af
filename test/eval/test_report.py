"""Markdown tables laid out like the paper's Tables 1, 3 and 5."""
from hybridgl_ros.eval.report import render_tables


def _summary(dataset='refcoco', split='val', mode='G2L', rel=True, coh=True, pos=True,
             guided=(40.0, 50.0), pure=(30.0, 35.0), complete=True):
    return {
        'dataset': dataset, 'split': split, 'limit': None, 'complete': complete,
        'planned_queries': 10, 'evaluated': 10 if complete else 4, 'skipped': 0,
        'metrics': {'pure': {'oIoU': pure[0], 'mIoU': pure[1]},
                    'guided': {'oIoU': guided[0], 'mIoU': guided[1]}},
        'settings': {'parity': 'default', 'features.mode': mode,
                     'guidance.use_relation': rel, 'guidance.use_coherence': coh,
                     'guidance.use_position': pos},
        'timing': {'ms_per_query': 0.0}}


def test_default_runs_fill_table_1_columns_beside_the_paper():
    table = render_tables([_summary(), _summary('refcocog', 'test', guided=(41.0, 52.0))])
    assert '| Metric | Method | RefCOCO val | RefCOCOg test |' in table
    assert '| oIoU | HybridGL, with spatial guidance (this run) | 40.00 | 41.00 |' in table
    assert '| mIoU | HybridGL, pure (this run) | 35.00 | 35.00 |' in table
    assert '| mIoU | HybridGL (paper) | 49.48 | 51.59 |' in table
    assert 'Table 3' not in table and 'Table 5' not in table


def test_a_feature_ablation_gets_a_table_3_row_with_pure_numbers():
    table = render_tables([_summary(mode='L', pure=(20.0, 30.0))])
    assert '| L | this run (pure) | 20.00 | 30.00 |' in table
    assert '| L | paper | 24.65 | 32.64 |' in table
    assert 'Table 1' not in table


def test_guidance_ablations_get_table_5_rows_with_guided_numbers():
    table = render_tables([_summary(rel=False, coh=False, pos=False, guided=(31.0, 40.0)),
                           _summary(pos=False, guided=(35.0, 44.0)), _summary()])
    assert '| ✓ |  |  |  | this run | 31.00 | 40.00 |' in table
    assert '| ✓ | ✓ | ✓ |  | paper | 35.68 | 44.29 |' in table
    assert '| ✓ | ✓ | ✓ | ✓ | this run | 40.00 | 50.00 |' in table


def test_paper_ablation_numbers_are_shown_for_val_splits_only():
    table = render_tables([_summary(split='testA', mode='L')])
    assert '| L | paper | — | — |' in table


def test_an_incomplete_run_is_flagged():
    table = render_tables([_summary(complete=False)])
    assert 'RefCOCO val*' in table and 'INCOMPLETE' in table


def test_a_guidance_setting_the_paper_did_not_run_still_gets_its_row():
    table = render_tables([_summary(rel=False, guided=(33.0, 42.0))])
    assert '| ✓ |  | ✓ | ✓ | this run | 33.00 | 42.00 |' in table


def test_the_grounding_table_has_right_and_not_found_per_target_size():
    from hybridgl_ros.eval.report import grounding_table

    grounding = {'N_acc': 0.9, 'T_acc': 0.95, 'gIoU': 80.0, 'cIoU': 70.0,
                 'ambiguity_flagged': 1.0, 'false_ambiguity': 0.0, 'ECE': 0.02, 'right': 0.9,
                 'by_kind': {}, 'by_spatial_word': {},
                 'by_target_size': {'8-16': {'queries': 10, 'right': 0.5, 'found': 0.7,
                                             'ambiguous': 0.0, 'confidence': 0.8},
                                    '>=128': {'queries': 4, 'right': 1.0, 'found': 1.0,
                                              'ambiguous': 0.0}}}
    older = {k: v for k, v in grounding.items() if k != 'by_target_size'}   # an older run
    rows = '\n'.join(grounding_table([
        dict(_summary('grefcoco', 'val'), grounding=grounding),
        dict(_summary('grefcoco', 'testA'), grounding=older)]))
    assert '| right: target side 8-16 px (%, expressions) | 50.0 (10) | — |' in rows
    assert '| not found: target side 8-16 px (%) | 30.0 | — |' in rows
    assert '| mean confidence: target side 8-16 px (%) | 80.0 | — |' in rows
    assert rows.index('8-16 px') < rows.index('>=128 px')
