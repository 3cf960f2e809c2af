"""hybridgl_ros.core never imports ROS: every module of it, present and future, is checked."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Imports every module under hybridgl_ros.core (walked with pkgutil, so modules added later are
# covered), then prints those it imported, and the ROS packages now loaded (rclpy, *_msgs,
# *_interfaces), as JSON.
_PROBE = """
import importlib, json, pkgutil, sys
import hybridgl_ros.core as core
names = [core.__name__] + [info.name for info in
         pkgutil.walk_packages(core.__path__, core.__name__ + '.')]
for name in names:
    importlib.import_module(name)
tops = {m.split('.')[0] for m in sys.modules}
ros = sorted(t for t in tops if t == 'rclpy' or t.endswith(('_msgs', '_interfaces')))
print(json.dumps({'modules': names, 'ros': ros}))
"""


def _probe():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get('PYTHONPATH')])]))
    done = subprocess.run([sys.executable, '-c', _PROBE], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_core_imports_no_ros_module():
    result = _probe()
    assert 'hybridgl_ros.core.text' in result['modules']
    assert result['ros'] == []
