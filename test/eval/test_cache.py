"""The per-image frame cache: exact round trip, keys, and a second run that skips SAM + CLIP."""
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import torch
from eval_data import StandInModel
from PIL import Image

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.types import Frame, Proposals
from hybridgl_ros.eval.cache import (
    QUERY_SIDE_MODULES, CachingProposer, FrameCache, code_digest, frame_key, frame_key_material,
    image_cache_name, proposal_key_material)
from hybridgl_ros.eval.records import read_results
from hybridgl_ros.eval.runner import EvalSettings, evaluate


def _frame(config=HybridGLConfig()):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (37, 45, 3), dtype=np.uint8)
    return StandInModel(config).prepare(image)


def test_a_stored_frame_loads_back_exactly(tmp_path):
    frame = _frame()
    cache = FrameCache(tmp_path, HybridGLConfig())
    cache.store('COCO_train2014_000000000001.jpg', frame)
    loaded = cache.load('COCO_train2014_000000000001.jpg')
    assert loaded.image_size == frame.image_size and loaded.gem_grid == frame.gem_grid
    assert np.array_equal(loaded.proposals.masks, frame.proposals.masks)
    assert np.array_equal(loaded.proposals.boxes_xywh, frame.proposals.boxes_xywh)
    assert np.array_equal(loaded.proposals.scores, frame.proposals.scores)
    assert torch.equal(loaded.mask_features, frame.mask_features)
    assert torch.equal(loaded.gem_tokens, frame.gem_tokens)
    assert torch.equal(loaded.mask_tensor, frame.mask_tensor)


def test_a_frame_without_proposals_round_trips(tmp_path):
    frame = _frame()
    empty = Frame(image_size=frame.image_size, proposals=Proposals.empty(*frame.image_size),
                  mask_features=torch.zeros((0, 3)), gem_tokens=None,
                  mask_tensor=torch.zeros((0, *frame.image_size)))
    cache = FrameCache(tmp_path, HybridGLConfig())
    cache.store('a.jpg', empty)
    loaded = cache.load('a.jpg')
    assert len(loaded.proposals) == 0 and loaded.proposals.masks.shape == (0, 37, 45)
    assert loaded.mask_features.shape == (0, 3) and loaded.gem_tokens is None


def test_an_absent_or_damaged_file_is_a_miss(tmp_path):
    cache = FrameCache(tmp_path, HybridGLConfig())
    assert cache.load('a.jpg') is None
    cache.path('a.jpg').parent.mkdir(parents=True)
    cache.path('a.jpg').write_bytes(b'garbage')
    assert cache.load('a.jpg') is None


def test_the_key_follows_frame_settings_but_not_text_or_guidance():
    base = frame_key(HybridGLConfig())
    for name, value in (('proposals.points_per_side', 16), ('features.mode', 'L'),
                        ('gem.input_scale', 3), ('models.sam_checkpoint', '/w/sam.pth'),
                        ('parity', 'reference')):
        assert frame_key(HybridGLConfig.from_flat({name: value})) != base, name
    for name, value in (('guidance.use_relation', False), ('guidance.spatial_weight', 0.5),
                        ('text.sentence_weight', 0.3), ('models.torch_threads', 2)):
        assert frame_key(HybridGLConfig.from_flat({name: value})) == base, name


def test_a_frame_without_gem_tokens_is_recomputed_when_coherence_is_on(tmp_path):
    no_coherence = HybridGLConfig.from_flat({'guidance.use_coherence': False})
    FrameCache(tmp_path, no_coherence).store('a.jpg', _frame(no_coherence))
    assert FrameCache(tmp_path, no_coherence).load('a.jpg') is not None
    assert FrameCache(tmp_path, HybridGLConfig()).load('a.jpg') is None


def test_a_second_run_with_other_guidance_reuses_every_frame(refcoco_root, tmp_path, stand_in):
    def settings(out):
        return EvalSettings('refcoco', 'val', refcoco_root, tmp_path / out, progress=False,
                            cache_dir=tmp_path / 'cache')

    no_relation = HybridGLConfig.from_flat({'guidance.use_relation': False})
    evaluate(settings('first'), HybridGLConfig(), stand_in)
    second = evaluate(settings('second'), no_relation, stand_in)
    assert stand_in.made[-1].prepared == 0
    assert second['timing']['cache_hits'] == second['timing']['frames'] == 4
    uncached = evaluate(EvalSettings('refcoco', 'val', refcoco_root, tmp_path / 'plain',
                                     progress=False), no_relation, stand_in)
    assert second['metrics'] == uncached['metrics']
    cache_states = {r['cache'] for r in read_results(tmp_path / 'first' / 'results.jsonl')[1]}
    assert cache_states == {'miss'}


def test_a_changed_image_with_the_same_name_is_recomputed_not_read_stale(refcoco_root, tmp_path,
                                                                        stand_in):
    settings = EvalSettings('refcoco', 'val', refcoco_root, tmp_path / 'first', progress=False,
                            cache_dir=tmp_path / 'cache')
    evaluate(settings, HybridGLConfig(), stand_in)
    image = next((refcoco_root / 'images' / 'mscoco' / 'images' / 'train2014').glob('*.jpg'))
    pixels = np.array(Image.open(image))
    Image.fromarray(255 - pixels).save(image, format='PNG')
    again = evaluate(dataclasses.replace(settings, out_dir=tmp_path / 'second'),
                     HybridGLConfig(), stand_in)
    assert stand_in.made[-1].prepared == 1
    assert again['timing']['cache_hits'] == again['timing']['frames'] - 1
    fresh = evaluate(EvalSettings('refcoco', 'val', refcoco_root, tmp_path / 'plain',
                                  progress=False), HybridGLConfig(), stand_in)
    assert again['metrics'] == fresh['metrics']


def test_images_are_cached_by_content_not_by_file_name(tmp_path):
    first, second = tmp_path / 'a' / 'x.png', tmp_path / 'b' / 'x.png'
    for path, value in ((first, 0), (second, 1)):
        path.parent.mkdir()
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)
    assert image_cache_name(first) != image_cache_name(second)
    assert image_cache_name(first).startswith('x-')
    copy = tmp_path / 'copy.png'
    copy.write_bytes(first.read_bytes())
    assert image_cache_name(copy).split('-')[1] == image_cache_name(first).split('-')[1]


class CountingProposer:
    def __init__(self):
        self.calls = 0

    def propose(self, image_rgb):
        self.calls += 1
        return _frame().proposals


def test_cached_proposals_serve_any_feature_mode_but_not_other_sam_settings(tmp_path):
    image = np.zeros((37, 45, 3), np.uint8)
    inner = CountingProposer()
    for flat in ({}, {'features.mode': 'L'}, {'gem.input_scale': 3},
                 {'proposals.points_per_side': 16}):
        proposer = CachingProposer(inner, tmp_path, HybridGLConfig.from_flat(flat))
        with proposer.naming('a.jpg'):
            proposals = proposer.propose(image)
        assert np.array_equal(proposals.masks, _frame().proposals.masks)
    assert inner.calls == 2


def test_proposals_of_an_unnamed_image_are_not_cached(tmp_path):
    inner = CountingProposer()
    proposer = CachingProposer(inner, tmp_path, HybridGLConfig())
    proposer.propose(np.zeros((37, 45, 3), np.uint8))
    proposer.propose(np.zeros((37, 45, 3), np.uint8))
    assert inner.calls == 2 and not any(tmp_path.iterdir())


def test_an_edit_to_the_code_that_computes_frames_is_a_new_key_and_a_query_side_one_is_not(
        tmp_path):
    """Frames cached by an older version under the same settings are not read after an upgrade
    that computes masks or features differently; a change to the decision keeps the cache."""
    core = Path(__file__).parents[2] / 'hybridgl_ros' / 'core'
    copy = tmp_path / 'core'
    shutil.copytree(core, copy)
    before = code_digest(copy)
    assert code_digest(Path(str(copy))) == before        # the same code, the same digest
    (copy / 'decision.py').write_text((copy / 'decision.py').read_text() + '\n# edited\n')
    assert 'decision.py' in QUERY_SIDE_MODULES
    assert code_digest(copy) == before
    again = tmp_path / 'again'
    shutil.copytree(core, again)
    (again / 'mask_generation.py').write_text(
        (again / 'mask_generation.py').read_text() + '\n# edited\n')
    assert code_digest(again) != before
    for material in (frame_key_material(HybridGLConfig()),
                     proposal_key_material(HybridGLConfig())):
        assert material['code'] == code_digest()
    assert code_digest() == code_digest(core)
