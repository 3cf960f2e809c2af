"""A test that hangs ends its process, with every thread's stack, instead of the suite's clock.

Each test, its fixtures included, gets ``HYBRIDGL_TEST_HANG_S`` seconds (default 300; the
slowest test took 29 s on a 2-core machine). Past that, :mod:`faulthandler` writes every
thread's Python stack and exits the process with code 1. Nothing gentler works for the hang
this guards against: a deadlock inside Fast DDS while a reader, writer or participant is
destroyed (eProsima/Fast-DDS#6502, open; the likely cause of a CI run that stopped after the
first test of test/ros/test_request_queue.py) blocks in C++, where no signal handler runs and
the GIL may be held.

``scripts/test.sh`` sets ``HYBRIDGL_TEST_PROGRESS`` to a folder. The guard then writes there
which tests started and which finished (and how), and the stack of a hang to ``hang.txt``; a
run started again with the same folder leaves out the tests that finished, so the hung test
and those after it run once more in a fresh process, and the failures of every run count.
"""
from __future__ import annotations

import faulthandler
import os
from pathlib import Path

import pytest

HANG_ENV = 'HYBRIDGL_TEST_HANG_S'
PROGRESS_ENV = 'HYBRIDGL_TEST_PROGRESS'
DEFAULT_HANG_S = 300.0


class HangGuard:
    """The pytest plugin: arms faulthandler around each test, records progress."""

    def __init__(self, limit_s: float, folder: Path | None) -> None:
        self.limit_s = limit_s
        if folder is None:
            self.finished: set[str] = set()
            self.dump = os.fdopen(os.dup(2), 'w')  # the real stderr, before any capture
            self.progress = None
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self.finished = finished_tests(folder / 'progress.txt')
            self.dump = (folder / 'hang.txt').open('w')
            self.progress = (folder / 'progress.txt').open('a')
        self._failed = False

    def _record(self, *fields: str) -> None:
        if self.progress is not None:
            self.progress.write('\t'.join(fields) + '\n')
            self.progress.flush()

    def pytest_collection_modifyitems(self, config, items):
        done = [item for item in items if item.nodeid in self.finished]
        if done:
            config.hook.pytest_deselected(items=done)
            items[:] = [item for item in items if item.nodeid not in self.finished]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self._failed = False
        self._record('start', item.nodeid)
        faulthandler.dump_traceback_later(self.limit_s, exit=True, file=self.dump)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
        self._record('end', item.nodeid, 'failed' if self._failed else 'ok')

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self._failed = True


def finished_tests(progress: Path) -> set[str]:
    """The node ids a progress file records as finished (passed or not)."""
    if not progress.exists():
        return set()
    return {line.split('\t')[1] for line in progress.read_text().splitlines()
            if line.startswith('end\t')}


def pytest_configure(config):
    if float(config.getini('faulthandler_timeout') or 0) > 0:
        return  # pytest's own faulthandler timeout asked for: one watchdog at a time
    limit_s = float(os.environ.get(HANG_ENV) or DEFAULT_HANG_S)
    folder = os.environ.get(PROGRESS_ENV)
    config.pluginmanager.register(HangGuard(limit_s, Path(folder) if folder else None),
                                  'hybridgl_hang_guard')
