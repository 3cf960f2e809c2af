"""``hybridgl eval`` / ``eval-merge``: the config each switch makes, and the commands' output."""
import argparse

import pytest

from hybridgl_ros.core.config import PHRASECUT_PROPOSALS, HybridGLConfig
from hybridgl_ros.eval.cli import build_config, register, run_eval, run_merge

BASE = ['eval', '--dataset', 'refcoco', '--split', 'val', '--data-root', 'data']


def _parse(argv):
    parser = argparse.ArgumentParser(prog='hybridgl')
    register(parser.add_subparsers(dest='command', required=True))
    return parser.parse_args(argv)


def _changes(argv):
    """Config fields that differ from a plain run's."""
    plain = build_config(_parse(BASE)).to_flat()
    return {k: v for k, v in build_config(_parse(BASE + argv)).to_flat().items()
            if v != plain[k]}


@pytest.mark.parametrize('switch, field', [
    ('--no-relation', 'guidance.use_relation'), ('--no-coherence', 'guidance.use_coherence'),
    ('--no-position', 'guidance.use_position')])
def test_each_guidance_switch_turns_off_exactly_its_field(switch, field):
    assert _changes([switch]) == {field: False}


@pytest.mark.parametrize('mode', ['L', 'G', 'G+L', 'L2G', 'G2L+L2G'])
def test_features_switch_sets_exactly_the_feature_mode(mode):
    assert _changes(['--features', mode]) == {'features.mode': mode}


def test_a_plain_run_uses_the_default_config():
    assert build_config(_parse(BASE)) == HybridGLConfig()


def test_switches_combine_with_config_overrides():
    changes = _changes(['--no-position', '--set', 'guidance.beta=1.5', '--device', 'cpu'])
    assert changes == {'guidance.use_position': False, 'guidance.beta': 1.5,
                       'models.device': 'cpu'}


def test_phrasecut_uses_sams_dense_recipe_with_other_overrides_on_top():
    argv = ['eval', '--dataset', 'phrasecut', '--split', 'test', '--data-root', 'd']
    assert build_config(_parse(argv)).proposals == PHRASECUT_PROPOSALS
    config = build_config(_parse(argv + ['--set', 'proposals.points_per_side=32',
                                         '--no-relation']))
    assert config.proposals.points_per_side == 32
    assert config.proposals.crop_n_layers == PHRASECUT_PROPOSALS.crop_n_layers
    assert not config.guidance.use_relation


def test_eval_prints_the_table_and_merge_joins_shards(refcoco_root, tmp_path, stand_in,
                                                      capsys):
    for k in (1, 2):
        args = _parse(['eval', '--dataset', 'refcoco', '--split', 'val', '--data-root',
                       str(refcoco_root), '--out', str(tmp_path / 'shards'), '--shard',
                       f'{k}/2', '--no-progress'])
        assert run_eval(args, model_factory=stand_in) == 0
    assert '### Table 1 layout' in capsys.readouterr().out
    merge_args = _parse(['eval-merge', str(tmp_path / 'shards'), '--out', str(tmp_path / 'm')])
    assert run_merge(merge_args) == 0
    out = capsys.readouterr().out
    assert '| oIoU | HybridGL (paper) | 41.81 |' in out and 'INCOMPLETE' not in out


def test_an_interrupted_eval_returns_130_and_keeps_its_results(refcoco_root, tmp_path,
                                                               stand_in):
    stand_in.interrupt_at = 3
    args = _parse(BASE[:-1] + [str(refcoco_root), '--out', str(tmp_path / 'o'),
                               '--no-progress'])
    assert run_eval(args, model_factory=stand_in) == 130
    assert len((tmp_path / 'o' / 'results.jsonl').read_text().splitlines()) == 3
