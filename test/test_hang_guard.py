"""The hang guard (test/hang_guard.py) and scripts/test.sh's rerun, on small suites of their
own: a hung test ends its process with its stack, runs again in a fresh one, and a test that
hangs twice, or a failure before the hang, still fails the run."""
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HANGS_ONCE = '''
import pathlib, time
MARK = pathlib.Path(__file__).with_name('hung_once')
def test_before():
    pass
def test_hangs():
    if not MARK.exists():
        MARK.touch()
        time.sleep(120)
def test_after():
    pass
'''


def _suite(tmp_path, source):
    (tmp_path / 'pytest.ini').write_text('[pytest]\n')
    (tmp_path / 'test_small.py').write_text(source)
    return ['-p', 'hang_guard', '-c', str(tmp_path / 'pytest.ini'), '--rootdir', str(tmp_path),
            '-p', 'no:cacheprovider', str(tmp_path / 'test_small.py')]


def _run(command, hang_s=2, progress=None):
    env = dict(os.environ, HYBRIDGL_TEST_HANG_S=str(hang_s), PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO / 'test'), os.environ.get('PYTHONPATH')])))
    env.pop('HYBRIDGL_TEST_PROGRESS', None)
    if progress is not None:
        env['HYBRIDGL_TEST_PROGRESS'] = str(progress)
    start = time.monotonic()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=90)
    return done, time.monotonic() - start


def _test_sh(tmp_path, source):
    return _run(['bash', str(REPO / 'scripts/test.sh'), *_suite(tmp_path, source)])


def test_a_test_that_hangs_once_runs_again_in_a_fresh_process_and_the_run_passes(tmp_path):
    done, seconds = _test_sh(tmp_path, HANGS_ONCE)
    print(f'\nhung once: exit {done.returncode} after {seconds:.1f} s')
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'test_small.py::test_hangs hung (not ended within HYBRIDGL_TEST_HANG_S' in done.stderr
    assert 'Timeout (0:00:02)!' in done.stderr and 'in test_hangs' in done.stderr, done.stderr
    assert 'running test_small.py::test_hangs and the tests not run yet again' in done.stderr
    assert '2 passed, 1 deselected' in done.stdout, done.stdout  # test_before ran once
    assert seconds < 60


def test_a_test_that_hangs_twice_fails_the_run(tmp_path):
    done, _ = _test_sh(tmp_path, HANGS_ONCE.replace('if not MARK.exists():', 'if True:'))
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'test_small.py::test_hangs hung again: FAILED' in done.stderr, done.stderr
    assert done.stderr.count('Timeout (0:00:02)!') == 2


def test_a_failure_before_the_hang_still_fails_the_run(tmp_path):
    source = HANGS_ONCE.replace('def test_before():\n    pass',
                                'def test_before():\n    assert 1 == 2')
    done, _ = _test_sh(tmp_path, source)
    assert done.returncode == 1, done.stdout + done.stderr
    assert '2 passed, 1 deselected' in done.stdout, done.stdout
    assert ('failed in an earlier process of this run:\ntest_small.py::test_before'
            in done.stderr), done.stderr


def test_run_by_pytest_itself_a_hang_prints_the_stacks_to_stderr_and_exits(tmp_path):
    done, seconds = _run([sys.executable, '-m', 'pytest', *_suite(tmp_path, HANGS_ONCE)])
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'Timeout (0:00:02)!' in done.stderr and 'in test_hangs' in done.stderr, done.stderr
    assert seconds < 30


def test_progress_records_which_tests_finished_and_how(tmp_path):
    progress = tmp_path / 'progress'
    source = HANGS_ONCE.replace('def test_after():\n    pass', 'def test_after():\n    1 / 0')
    done, _ = _run([sys.executable, '-m', 'pytest', *_suite(tmp_path, source)],
                   progress=progress)
    assert done.returncode == 1 and 'Timeout' in (progress / 'hang.txt').read_text()
    assert (progress / 'progress.txt').read_text().splitlines() == [
        'start\ttest_small.py::test_before', 'end\ttest_small.py::test_before\tok',
        'start\ttest_small.py::test_hangs']
    done, _ = _run([sys.executable, '-m', 'pytest', *_suite(tmp_path, source)],
                   progress=progress)
    assert done.returncode == 1 and '1 failed, 1 passed, 1 deselected' in done.stdout
    assert (progress / 'progress.txt').read_text().splitlines()[-2:] == [
        'start\ttest_small.py::test_after', 'end\ttest_small.py::test_after\tfailed']
