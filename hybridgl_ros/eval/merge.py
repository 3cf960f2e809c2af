"""Joins the results files of shards (and lays several runs side by side in one table).

Files of the same run (same dataset, split, limit and config) are merged into one results file
in plan order; their summary equals that of a single unsharded run. Different runs (other
splits, ablations) each get a folder and share one summary list and one table.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

from hybridgl_ros.core.errors import ConfigError
from hybridgl_ros.eval.records import ResultsWriter, read_results
from hybridgl_ros.eval.report import build_summary
from hybridgl_ros.eval.runner import write_outputs

_LOG = logging.getLogger(__name__)

_SWITCH_TAGS = (('guidance.use_relation', 'no-relation'),
                ('guidance.use_coherence', 'no-coherence'),
                ('guidance.use_position', 'no-position'))


def run_tag(dataset: str, split: str, config: Mapping) -> str:
    """A folder name for a run: 'refcoco-val', 'refcoco-val-L-no-relation', ..."""
    parts = [dataset, split]
    if config['features.mode'] != 'G2L':
        parts.append(config['features.mode'])
    parts += [tag for name, tag in _SWITCH_TAGS if not config[name]]
    if config['parity'] != 'default':
        parts.append(config['parity'])
    return '-'.join(parts)


def collect_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Results files named directly or found (``results*.jsonl``) in the given folders."""
    files: list[Path] = []
    for entry in map(Path, inputs):
        if entry.is_dir():
            files += sorted(entry.glob('results*.jsonl'))
        elif entry.is_file():
            files.append(entry)
        else:
            raise ConfigError(f'{entry}: no such file or folder')
    if not files:
        raise ConfigError('no results*.jsonl files found in the given inputs')
    return files


def _identity(header: Mapping) -> str:
    import json

    return json.dumps([header['dataset'], header['split'], header.get('limit'),
                       header['config']], sort_keys=True)


def merge_group(parts: list[tuple[Path, dict, list[dict]]]) -> tuple[dict, list[dict]]:
    """One run's shards -> (merged header, records in plan order, duplicates dropped)."""
    counts = {tuple(h['shard'])[1] for _, h, _ in parts}
    if len(counts) > 1:
        raise ConfigError(f'shards of one run disagree on N: {sorted(counts)}')
    count = counts.pop()
    present = sorted({h['shard'][0] for _, h, _ in parts})
    missing = sorted(set(range(1, count + 1)) - set(present))
    first = parts[0][1]
    if missing:
        _LOG.warning('%s %s: shards %s of %d missing; the merge is partial', first['dataset'],
                     first['split'], missing, count)
    records: dict[str, dict] = {}
    for path, _, rows in parts:
        for row in rows:
            if row['query_id'] in records:
                _LOG.warning('%s: query %s appears twice; keeping the first', path,
                             row['query_id'])
                continue
            records[row['query_id']] = row
    header = {key: value for key, value in first.items() if key != 'kind'}
    header.update(shard=[1, 1], shards=[[k, count] for k in present],
                  planned_queries=first['planned_total'],
                  merged_from=[str(path) for path, _, _ in parts])
    return header, sorted(records.values(), key=lambda r: r['order'])


def merge(inputs: Iterable[str | Path], out_dir: str | Path) -> list[dict]:
    """Merges the shards of each run found in ``inputs`` and writes results, summary, table.

    Returns:
        The summaries, one per run.
    """
    out_dir = Path(out_dir)
    groups: dict[str, list[tuple[Path, dict, list[dict]]]] = {}
    files = []
    for path in collect_files(inputs):
        if path.resolve().is_relative_to(out_dir.resolve()):  # `eval_out/*` holds the out
            _LOG.info('%s: inside --out (an earlier merge), not an input', path)
        else:
            files.append(path)
    if not files:
        raise ConfigError('no results*.jsonl files found in the given inputs outside --out')
    for path in files:
        header, records, _ = read_results(path)
        groups.setdefault(_identity(header), []).append((path, header, records))
    summaries, used = [], set()
    for parts in groups.values():
        header, records = merge_group(parts)
        folder = out_dir
        if len(groups) > 1:
            tag = run_tag(header['dataset'], header['split'], header['config'])
            while tag in used:
                tag += '+'
            used.add(tag)
            folder = out_dir / tag
        _replace_earlier_merge(folder / 'results.jsonl')
        with ResultsWriter.create(folder / 'results.jsonl', header) as writer:
            for record in records:
                writer.write(record)
        summary = build_summary(header, records)
        summaries.append(summary)
        if len(groups) > 1:
            write_outputs(folder / 'summary.json', folder / 'table.md', [summary])
    write_outputs(out_dir / 'summary.json', out_dir / 'table.md', summaries)
    return summaries


def _replace_earlier_merge(path: Path) -> None:
    """Removes ``path`` if an earlier ``eval-merge`` wrote it (merging again, a split added);
    ConfigError if it is a run's own results, which a merge must not overwrite."""
    if not path.exists():
        return
    header, _, _ = read_results(path)
    if 'merged_from' not in header:
        raise ConfigError(f"{path} exists and is a run's results, not an earlier eval-merge "
                          'output: choose another --out')
    path.unlink()
