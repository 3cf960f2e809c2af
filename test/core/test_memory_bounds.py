"""Bounded memory: 4K and 12 MP frames answered within a 4 GiB process, out of memory refused.

The limits are real: a child process runs the embedded demo models (real SAM and open_clip
code at a small size, so the full-resolution paths run without ViT-H's cost) under
``RLIMIT_DATA`` (the process's private memory: heap and anonymous maps; the address-space limit
is no use with torch, whose libraries alone map 4 GB of address space).
"""
import json
import subprocess
import sys
import textwrap

import pytest

GIB = 2 ** 30

_CHILD = textwrap.dedent('''
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    from hybridgl_ros.bench import bench_image
    from hybridgl_ros.core import HybridGL, HybridGLConfig
    from hybridgl_ros.core.errors import ResourceExhaustedError
    from hybridgl_ros.core.models import load_clip, load_sam

    requests = json.loads(sys.argv[1])
    models = HybridGLConfig().models
    clip, sam = load_clip(models, torch.device('cpu')), load_sam(models, torch.device('cpu'))
    segmenters = {}
    images = [bench_image(r['size'][1], r['size'][0]) for r in requests]

    def vm_data():
        for line in open('/proc/self/status'):
            if line.startswith('VmData:'):
                return int(line.split()[1]) * 1024

    for request, image in zip(requests, images):
        key = json.dumps(request['config'])
        if key not in segmenters:
            # the memory path is under test, not the decision: keep the answer found
            config = HybridGLConfig.from_flat({**request['config'],
                                               'decision.reject_absent': False})
            segmenters[key] = HybridGL.from_models(config, clip, sam)
            segmenters[key].parser.parse('load the parser')
        limit = request['limit_bytes'] or vm_data() + request['headroom_bytes']
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.RLIM_INFINITY))
        frame = result = None
        try:
            frame = segmenters[key].prepare(image)
            result = segmenters[key].query(frame, 'the red ball on the left')
            x, y = result.interior_xy
            answer = {'found': result.found, 'mask': list(result.mask.shape),
                      'working': list(frame.working_size), 'inside': bool(result.mask[y, x])}
        except ResourceExhaustedError as exc:
            answer = {'refused': str(exc)}
        resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY,) * 2)
        print(json.dumps(answer), flush=True)
        del frame, result
''')
FULL_RESOLUTION = {'proposals.max_working_pixels': 0}
#: (width, height, limit in bytes or 0, headroom over the memory in use or 0, config) per frame:
#: 4K and 12 MP under 4 GiB; then 4K at full resolution with 32 MiB to spare, which cannot fit
#: (the image's float copy alone is 100 MB), then 640x480 at full resolution under 4 GiB.
REQUESTS = [(3840, 2160, 4 * GIB, 0, {}), (4000, 3000, 4 * GIB, 0, {}),
            (3840, 2160, 0, 32 * 2 ** 20, FULL_RESOLUTION),
            (640, 480, 4 * GIB, 0, FULL_RESOLUTION)]


@pytest.fixture(scope='module')
def answers():
    """The child process's answer (dict) to each of REQUESTS, in order."""
    args = [{'size': [w, h], 'limit_bytes': limit, 'headroom_bytes': headroom, 'config': config}
            for w, h, limit, headroom, config in REQUESTS]
    done = subprocess.run([sys.executable, '-c', _CHILD, json.dumps(args)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{')]
    assert len(answers) == len(REQUESTS)
    return answers


def test_4k_and_12_megapixel_frames_are_answered_within_4_gib(answers):
    for answer, size in zip(answers[:2], [(2160, 3840), (3000, 4000)]):
        assert answer['found'] and answer['mask'] == list(size) and answer['inside']
        height, width = answer['working']
        assert height * width <= 1024 * 1024
        assert abs(width / height - size[1] / size[0]) < 0.01


def test_out_of_memory_refuses_the_frame_and_the_next_frame_is_answered(answers):
    refused, answered = answers[2:]
    assert 'out of memory' in refused['refused'] and 'dropped' in refused['refused']
    assert answered['found'] and answered['mask'] == [480, 640]
