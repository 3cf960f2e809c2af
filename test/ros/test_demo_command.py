"""``hybridgl demo`` as users run it: node and image publisher processes, the demo as client."""
import subprocess
import sys

import cv2

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.demo import DEMO_CONFIG_FILE, demo_config, package_config_file


def test_hybridgl_demo_answers_through_the_node_and_writes_pictures(ros_env, tmp_path):
    out = tmp_path / 'demo'
    scratch = tmp_path / 'tmp'            # the demo's temporary folders (node output, ROS logs)
    scratch.mkdir()
    env = {k: v for k, v in ros_env.items() if k != 'ROS_LOG_DIR'} | {'TMPDIR': str(scratch)}
    run = subprocess.run(
        [sys.executable, '-m', 'hybridgl_ros.cli', 'demo', '--out', str(out), '--count', '1',
         '--per-scene', '3', '--track-frames', '6', '--set', 'models.torch_threads=1',
         '--set', 'models.device=cpu'],
        env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not list(scratch.glob('hybridgl*'))     # a clean run leaves none of its own behind
    answers = [line for line in run.stdout.splitlines() if line.startswith('scene 00')]
    assert len(answers) == 3, run.stdout
    assert all(' IoU ' in line for line in answers)
    assert 'correct (IoU >= 0.5)' in run.stdout
    overlays = sorted((out / 'overlays').glob('*.png'))
    assert len(overlays) == 3
    assert cv2.imread(str(overlays[0])).shape[:2] == (480, 640)
    assert cv2.imread(str(out / 'contact_sheet.png')) is not None
    assert (out / 'scenes' / 'scene_000.png').is_file()
    assert 'frames tracked' in run.stdout                  # the tracking part, through ~/track
    assert (out / 'track.gif').stat().st_size > 0 and (out / 'track_strip.png').is_file()


def test_demo_config_is_the_defaults_with_ramps_its_own_calibration_and_no_box_prompts():
    config = demo_config()
    assert package_config_file(DEMO_CONFIG_FILE).is_file()
    assert config.guidance.vertical_ramps
    assert not config.tracking.box_prompt           # the demo SAM never learnt box prompts
    assert config.decision.calibrated_for == HybridGLConfig().decision.calibrated_for
    own = {'tracking.box_prompt'} | {f'decision.{name}' for name in (
        'presence_threshold', 'presence_weights', 'presence_bias', 'confidence_weights',
        'confidence_bias', 'ambiguity_margin')}
    assert {k: v for k, v in config.to_flat().items() if k not in own} == {
        k: v for k, v in HybridGLConfig().to_flat().items() if k not in own}
