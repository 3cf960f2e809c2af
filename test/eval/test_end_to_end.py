"""``hybridgl eval`` with the real HybridGL (tiny random CLIP, real spaCy) on generated scenes.

The scenes come from the demo generator in the RefCOCO layout. Proposals are the scenes'
instance masks (an oracle proposer, looked up by the image's pixels): with disjoint proposals
every prediction is either the referred object (I = U) or another one (I = 0), which makes the
metric path checkable; SAM's own path is tested with the core. A random CLIP picks at random,
so nothing here is about accuracy.
"""
import argparse
import hashlib
import json

import numpy as np
import pytest

from hybridgl_ros.core.pipeline import HybridGL
from hybridgl_ros.core.text import SpacyParser
from hybridgl_ros.core.types import Proposals
from hybridgl_ros.demo.refcoco_layout import write_dataset
from hybridgl_ros.eval.cli import register, run_eval
from hybridgl_ros.eval.datasets import decode_segmentation, load_dataset
from hybridgl_ros.eval.records import read_results
from hybridgl_ros.eval.runner import load_image

LIMIT = 30


class OracleProposer:
    """The annotated instance masks of each scene image, found by a hash of its pixels."""

    def __init__(self, root):
        coco = json.loads((root / 'instances.json').read_text())
        by_image = {}
        for ann in coco['annotations']:
            by_image.setdefault(ann['image_id'], []).append(ann['segmentation'])
        self.masks = {}
        for info in coco['images']:
            pixels = load_image(root / 'images' / info['file_name'])
            self.masks[self._key(pixels)] = np.stack([
                decode_segmentation(s, info['height'], info['width'])
                for s in by_image[info['id']]])
        self.calls = 0

    @staticmethod
    def _key(image_rgb):
        return hashlib.sha256(np.ascontiguousarray(image_rgb).tobytes()).hexdigest()

    def propose(self, image_rgb):
        self.calls += 1
        masks = self.masks[self._key(image_rgb)]
        boxes = []
        for mask in masks:
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        return Proposals(masks.copy(), np.asarray(boxes, np.int64),
                         np.ones(len(masks), np.float32))


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    write_dataset(root, count=3, seed=5)
    return root


@pytest.fixture(scope='module')
def run(scenes, tiny_clip, tmp_path_factory):
    """run(*switches, cache=True) -> (records, proposer calls, output folder): ``hybridgl
    eval`` on the scenes, each distinct run done once per module (one spaCy parser serves
    them all; runs with the cache share one, so only the first computes frames)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only fight over the shared CPU
    proposer = OracleProposer(scenes)
    parser = SpacyParser()
    work = tmp_path_factory.mktemp('runs')
    done = {}

    def factory(config):
        return HybridGL(config, clip_model=tiny_clip, proposer=proposer, parser=parser)

    def go(*switches, cache=True):
        if (switches, cache) in done:
            return done[(switches, cache)]
        out = work / ('out' + ''.join(switches) + ('-cached' if cache else ''))
        argv = ['eval', '--dataset', 'refcoco', '--split', 'train', '--data-root', str(scenes),
                '--limit', str(LIMIT), '--out', str(out), '--no-progress', *switches]
        if cache:
            argv += ['--cache-dir', str(work / 'cache')]
        cli = argparse.ArgumentParser()
        register(cli.add_subparsers(dest='command'))
        proposer.calls = 0
        assert run_eval(cli.parse_args(argv), model_factory=factory) == 0
        done[(switches, cache)] = read_results(out / 'results.jsonl')[1], proposer.calls, out
        return done[(switches, cache)]
    yield go
    torch.set_num_threads(threads)


def test_eval_scores_every_query_once_per_image(run):
    records, prepared, out = run()
    assert len(records) == LIMIT and all(r['status'] == 'ok' for r in records)
    images = {r['image_id'] for r in records}
    assert prepared == len(images) > 1
    for r in records:
        assert r['inter'] in (0, r['union']) and r['inter_pure'] in (0, r['union_pure'])
    assert '### Table 1 layout' in (out / 'table.md').read_text()


def test_frames_from_the_cache_give_the_same_answers(run):
    run()
    cached, prepared, out = run('--no-relation')
    computed, _, _ = run('--no-relation', cache=False)
    assert prepared == 0
    assert [(r['index'], r['pure_index']) for r in cached] == [
        (r['index'], r['pure_index']) for r in computed]
    table = (out / 'table.md').read_text()
    assert '### Table 5 layout' in table and '| ✓ |  | ✓ | ✓ | this run |' in table


def test_a_feature_ablation_reuses_the_cached_sam_proposals(run):
    run()
    records, prepared, _ = run('--features', 'L')
    assert prepared == 0
    assert all(r['cache'] == 'proposals' for r in records)


@pytest.mark.parametrize('switch, cue', [('--no-relation', 'relation'),
                                         ('--no-position', 'direction')])
def test_a_guidance_switch_changes_only_queries_that_carry_its_cue(run, switch, cue):
    full, _, _ = run()
    ablated, _, _ = run(switch)
    assert [r['pure_index'] for r in ablated] == [r['pure_index'] for r in full]
    for a, f in zip(ablated, full):
        if f[cue] == 'none':
            assert a['index'] == f['index'], f['text']
    assert any(f[cue] != 'none' for f in full)


def test_the_scene_layout_is_read_like_refcoco(scenes):
    images = load_dataset('refcoco', 'train', scenes)
    assert len(images) == 3 and all(i.size_hw == (480, 640) for i in images)
