"""Generated clips on disk (``hybridgl make-scenes --sequence``): frames and true masks.

Layout of ``OUT``::

    clips.json                    one entry per clip: name, kind, text, target, lookalike,
                                  frames, objects (shape, colour, size), gone_at
    <name>/frame_000.png ...      the frames, RGB PNG, 640x480
    <name>/masks.npz              visible: (T, N, 480, 640) bool, bits packed along the last
                                  axis (numpy.unpackbits(..., axis=-1, count=640));
                                  visible_fraction: (T, N) float32

``read_clip_masks(folder)`` unpacks the masks again.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hybridgl_ros.demo.sequences import Clip, make_clips


def write_clips(out: str | Path, count: int, seed: int, frames: int) -> dict:
    """Writes ``count`` clips of series ``seed``; returns a summary (clips, frames, folder)."""
    from hybridgl_ros.cli import write_image_rgb

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for clip in make_clips(seed, count, frames):
        folder = out / clip.name
        masks, fractions = [], []
        for t, frame in enumerate(clip):
            write_image_rgb(folder / f'frame_{t:03d}.png', frame.image_rgb)
            masks.append(np.packbits(frame.masks, axis=-1))
            fractions.append(frame.visible_fraction.astype(np.float32))
        np.savez_compressed(folder / 'masks.npz', visible=np.stack(masks),
                            visible_fraction=np.stack(fractions))
        entries.append(_entry(clip, fractions))
    (out / 'clips.json').write_text(json.dumps(entries, indent=1) + '\n')
    return {'clips': len(entries), 'frames': count * frames, 'out': str(out)}


def _entry(clip: Clip, fractions: list[np.ndarray]) -> dict:
    gone = [t for t, f in enumerate(fractions) if f[clip.target] == 0.0]
    return {'name': clip.name, 'kind': clip.kind, 'text': clip.text, 'target': clip.target,
            'lookalike': clip.lookalike, 'frames': clip.frames, 'seed': clip.seed,
            'index': clip.index, 'gone_at': gone[0] if gone else None,
            'objects': [{'shape': m.obj.shape, 'colour': m.obj.colour, 'size': m.obj.size}
                        for m in clip.movers]}


def read_clip_masks(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(visible (T, N, H, W) bool, visible_fraction (T, N)) of a written clip's folder."""
    from hybridgl_ros.demo.scenes import WIDTH_PX

    data = np.load(Path(folder) / 'masks.npz')
    visible = np.unpackbits(data['visible'], axis=-1, count=WIDTH_PX).astype(bool)
    return visible, data['visible_fraction']
