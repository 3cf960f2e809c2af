"""Run summaries and Markdown tables laid out like the paper's Tables 1, 3 and 5."""
from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

from hybridgl_ros.eval.grounding import grounding_metrics, size_group_key
from hybridgl_ros.eval.metrics import summarize_records
from hybridgl_ros.eval.paper import DATASET_TITLES, TABLE1, TABLE3, TABLE5

_LOG = logging.getLogger(__name__)

#: Config fields that decide which paper table a run belongs to (the ablation switches).
SETTING_FIELDS = ('parity', 'features.mode', 'guidance.use_relation', 'guidance.use_coherence',
                  'guidance.use_position')
_SWITCHES = ('guidance.use_relation', 'guidance.use_coherence', 'guidance.use_position')
GROUND_TRUTH_WORDS = {
    'union': 'the union of the referred object\'s polygons (standard)',
    'exactly_once': 'pixels covered by exactly one of the referred object\'s polygons (the '
                    'authors\' loader, parity mode)'}


def build_summary(header: Mapping, records: Iterable[Mapping]) -> dict:
    """The JSON summary of a run (or of merged shards) from its header and query records."""
    records = list(records)
    summary = summarize_records(records)
    config = header['config']
    summary.update({
        'dataset': header['dataset'], 'split': header['split'], 'limit': header.get('limit'),
        'shards': header.get('shards', [list(header['shard'])]),
        'planned_queries': header['planned_queries'],
        'complete': summary['queries'] >= header['planned_queries'],
        'settings': {name: config[name] for name in SETTING_FIELDS},
        'ground_truth': header.get('ground_truth', 'union'),
        'frame_key': header.get('frame_key', ''),
        'clip_fingerprint': header.get('clip_fingerprint', '')})
    if any('no_target' in r for r in records):
        summary['grounding'] = grounding_metrics(records)
    return summary


def _column(summary: Mapping) -> str:
    title = f'{DATASET_TITLES.get(summary["dataset"], summary["dataset"])} {summary["split"]}'
    if summary['settings']['parity'] != 'default':
        title += f' ({summary["settings"]["parity"]} parity)'
    if not summary['complete'] or summary.get('limit'):
        title += '*'
    return title


def _is_default(summary: Mapping) -> bool:
    settings = summary['settings']
    return settings['features.mode'] == 'G2L' and all(settings[s] for s in _SWITCHES)


def _fmt(value: float | None) -> str:
    return '—' if value is None else f'{value:.2f}'


def _rows_to_markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines


def table1(summaries: Sequence[Mapping]) -> list[str]:
    """Table 1 layout: Metric | Method | one column per dataset split."""
    columns = {_column(s): s for s in summaries}
    rows = []
    for metric_index, metric in enumerate(('oIoU', 'mIoU')):
        for label, variant in (('HybridGL, pure (this run)', 'pure'),
                               ('HybridGL, with spatial guidance (this run)', 'guided')):
            rows.append([metric, label] + [_fmt(s['metrics'][variant][metric])
                                           for s in columns.values()])
        rows.append([metric, 'HybridGL (paper)'] + [
            _fmt(TABLE1.get((s['dataset'], s['split']), (None, None))[metric_index])
            for s in columns.values()])
    return _rows_to_markdown(['Metric', 'Method', *columns], rows)


def _val_paper(table: Mapping[str, tuple[float, float]], summary: Mapping) -> list[str]:
    if summary['split'] != 'val' or summary['dataset'] not in table:
        return ['—', '—']
    return [_fmt(v) for v in table[summary['dataset']]]


def table3(summaries: Sequence[Mapping]) -> list[str]:
    """Table 3 layout: one row per feature mode, pure numbers (no spatial guidance)."""
    columns = list(dict.fromkeys(_column(s) for s in summaries))
    by_column = {_column(s): s for s in summaries}
    cells: dict[tuple[str, str], Mapping] = {}
    for s in summaries:
        cells[(s['settings']['features.mode'], _column(s))] = s
    head = ['Method', 'Source'] + [f'{c} {m}' for c in columns for m in ('oIoU', 'mIoU')]
    rows = []
    for mode, (name, paper) in TABLE3.items():
        runs = {c: cells.get((mode, c)) for c in columns}
        if not any(runs.values()):
            continue
        rows.append([name, 'this run (pure)'] + [
            _fmt(run['metrics']['pure'][m]) if run else '—'
            for run in runs.values() for m in ('oIoU', 'mIoU')])
        rows.append([name, 'paper'] + [
            v for c in columns for v in _val_paper(paper, by_column[c])])
    return _rows_to_markdown(head, rows)


def table5(summaries: Sequence[Mapping]) -> list[str]:
    """Table 5 layout: G2L features; one row per (Rel, Coh, Pos) setting, guided numbers."""
    g2l = [s for s in summaries if s['settings']['features.mode'] == 'G2L']
    columns = list(dict.fromkeys(_column(s) for s in g2l))
    by_column = {_column(s): s for s in g2l}
    cells = {(tuple(s['settings'][f] for f in _SWITCHES), _column(s)): s for s in g2l}
    head = ['G2L', 'Rel', 'Coh', 'Pos', 'Source'] + [
        f'{c} {m}' for c in columns for m in ('oIoU', 'mIoU')]
    rows = []
    settings = list(TABLE5) + sorted({k for k, _ in cells} - set(TABLE5), reverse=True)
    for switches in settings:
        runs = {c: cells.get((switches, c)) for c in columns}
        if not any(runs.values()):
            continue
        ticks = ['✓'] + ['✓' if on else '' for on in switches]
        rows.append(ticks + ['this run'] + [
            _fmt(run['metrics']['guided'][m]) if run else '—'
            for run in runs.values() for m in ('oIoU', 'mIoU')])
        if switches in TABLE5:
            rows.append(ticks + ['paper'] + [
                v for c in columns for v in _val_paper(TABLE5[switches], by_column[c])])
    return _rows_to_markdown(head, rows)


def _pct(value: float | None) -> str:
    return '—' if value is None else f'{100 * value:.1f}'


def grounding_table(summaries: Sequence[Mapping]) -> list[str]:
    """gRefCOCO's metrics, the ambiguity flags, ECE and right answers per kind and word."""
    columns = {_column(s): s['grounding'] for s in summaries}
    rows = [[name, *[fmt(g) for g in columns.values()]] for name, fmt in (
        ('N-acc (%)', lambda g: _pct(g['N_acc'])), ('T-acc (%)', lambda g: _pct(g['T_acc'])),
        ('gIoU', lambda g: _fmt(g['gIoU'])), ('cIoU', lambda g: _fmt(g['cIoU'])),
        ('ambiguous flagged (%)', lambda g: _pct(g['ambiguity_flagged'])),
        ('single target flagged (%)', lambda g: _pct(g['false_ambiguity'])),
        ('ECE (%)', lambda g: _pct(g['ECE'])), ('right (%)', lambda g: _pct(g['right'])))]
    groups = sorted({k for g in columns.values() for k in g['by_kind']})
    rows += [[f'right: {k} (%)', *[_pct(g['by_kind'].get(k, {}).get('right'))
                                   for g in columns.values()]] for k in groups]
    words = sorted({w for g in columns.values() for w in g['by_spatial_word']})
    rows += [[f'right: spatial "{w}" (%)', *[
        _pct(g['by_spatial_word'].get(w, {}).get('right')) for g in columns.values()]]
        for w in words]
    rows += _size_rows(list(columns.values()))
    return _rows_to_markdown(['Metric', *columns], rows)


def _size_rows(columns: Sequence[Mapping]) -> list[list[str]]:
    """Per target-size group (``grounding.by_target_size``): right, with how many
    single-target expressions, the share of present targets answered "not found" and the
    answers' mean confidence (beside right: whether the confidence knows the size)."""
    rows = []
    for name in _size_order(columns):
        cells = [g.get('by_target_size', {}).get(name) for g in columns]
        rows.append([f'right: target side {name} px (%, expressions)', *[
            '—' if c is None else f'{_pct(c["right"])} ({c["queries"]})' for c in cells]])
        rows.append([f'not found: target side {name} px (%)', *[
            '—' if c is None else _pct(1.0 - c['found']) for c in cells]])
        rows.append([f'mean confidence: target side {name} px (%)', *[
            '—' if c is None else _pct(c.get('confidence')) for c in cells]])
    return rows


def _size_order(columns: Sequence[Mapping]) -> list[str]:
    """The size groups any column has, smallest first."""
    seen: list[str] = []
    for g in columns:
        seen += [name for name in g.get('by_target_size', {}) if name not in seen]
    return sorted(seen, key=size_group_key)


def _footnotes(summaries: Sequence[Mapping]) -> list[str]:
    notes = []
    for s in summaries:
        note = (f'- {_column(s)}: {s["evaluated"]} queries evaluated, {s["skipped"]} skipped, '
                f'of {s["planned_queries"]} planned')
        if s.get('limit'):
            note += f' (--limit {s["limit"]})'
        if not s['complete']:
            note += '; INCOMPLETE (interrupted, or shards missing)'
        no_target = s['evaluated'] - s.get('with_target', s['evaluated'])
        if no_target:
            note += (f'; oIoU / mIoU over the {s["with_target"]} with a target (the {no_target} '
                     f'no-target ones are scored by N-acc and gIoU)')
        if s['timing']['ms_per_query']:
            note += f'; {s["timing"]["ms_per_query"]:.1f} ms per query'
        note += '; ground truth: ' + GROUND_TRUTH_WORDS.get(s.get('ground_truth', 'union'),
                                                            s.get('ground_truth', 'union'))
        notes.append(note)
    return notes


def render_tables(summaries: Sequence[Mapping]) -> str:
    """Markdown: Table 1 for runs with the default method, Tables 3/5 for ablation runs."""
    summaries = list(summaries)
    parts: list[str] = []
    defaults = [s for s in summaries if _is_default(s)]
    if defaults:
        parts += ['### Table 1 layout (oIoU / mIoU ×100)', '', *table1(defaults), '']
    if any(s['settings']['features.mode'] != 'G2L' for s in summaries):
        parts += ['### Table 3 layout: feature ablation, no spatial guidance', '',
                  *table3(summaries), '']
    if any(not all(s['settings'][f] for f in _SWITCHES) for s in summaries):
        parts += ['### Table 5 layout: spatial-guidance ablation', '', *table5(summaries), '']
    grounded = [s for s in summaries if s.get('grounding')]
    if grounded:
        parts += ['### Answers: not found, ambiguous, confidence', '',
                  *grounding_table(grounded), '']
        if any(s['grounding'].get('by_target_size') for s in grounded):
            parts += ['Target side: the side of a square with the target\'s area at the '
                      'working size (the pixels the models saw), single-target expressions.', '']
    parts += ['Paper values are the HybridGL rows of the paper (ablations: val splits only).',
              '', *_footnotes(summaries)]
    return '\n'.join(parts) + '\n'
