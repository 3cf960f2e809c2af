"""Running the node as a process until SIGINT or SIGTERM, then a bounded, clean exit.

rclpy's own signal handler invalidates the context at once, after which no call can be answered
(a waiting client got ``RCLError: ... context is invalid``), and its executor then waits for the
running callback (a 15 s query). Here a signal only sets an event. The node answers every
waiting and running call ("shutting down", success = false), the executor gets a moment to send
those answers, then ROS shuts down. Work still running in torch is abandoned: the process exits
without waiting for it. Further signals during shutdown are ignored (no KeyboardInterrupt
traceback, exit code 0).

The shutdown itself is bounded (:func:`exit_bound`): if it has not ended ``EXIT_BOUND_S``
after the signal, the process writes every thread's stack to stderr and exits with code 1.
Destroying DDS entities can deadlock inside Fast DDS (eProsima/Fast-DDS#6502, open), in C++
where no Python code runs again; :mod:`faulthandler`'s watchdog is a C thread, so it still
ends the process. The image publisher and the demo's client bound their ROS teardown the same
way.
"""
from __future__ import annotations

import contextlib
import faulthandler
import inspect
import os
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

SIGNALS = (signal.SIGINT, signal.SIGTERM)
ANSWER_GRACE_S = 1.0  # for the executor to hand the answers to DDS
SEND_GRACE_S = 0.1  # for DDS to deliver them before the participant goes
THREAD_GRACE_S = 0.3  # for idle executor threads to finish
EXIT_BOUND_S = 10.0  # from the signal to the process's end, whatever blocks (it takes ~2 s)


class StopSignal:
    """An event set by SIGINT/SIGTERM; :meth:`install` in the main thread before rclpy.init."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.name = ''
        self.logger = None

    def install(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._handle)

    def take(self, signum: int) -> None:
        """A signal that came before :meth:`install` (kept by the entry point)."""
        self._handle(signum, None)

    def request(self, name: str, delay_s: float = 0.0) -> None:
        """Ends the process as a signal would, ``delay_s`` from now (``name`` says why: it
        ends the answers' "the node is shutting down (...)")."""
        if delay_s <= 0:
            self._stop(name)
            return
        timer = threading.Timer(delay_s, self._stop, args=(name,))
        timer.daemon = True
        timer.start()

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if not self._stop(name) and self.logger is not None:
            self.logger.warning(f'{name}: already shutting down')

    def _stop(self, name: str) -> bool:
        """Sets the event with ``name``; False if it was set already (the first name stays)."""
        if self.event.is_set():
            return False
        self.name = name
        self.event.set()
        return True


def run_until_stopped(node, stop: StopSignal, num_threads: int = 4) -> bool:
    """Spins ``node`` until ``stop`` is set or ROS shuts down, then shuts it down.

    ``node`` answers pending calls in ``stop_serving(reason) -> bool`` (whether work is still
    running) and ``wait_answered(timeout_s)``.

    Returns:
        True if work is still running (the caller should exit the process without waiting).
    """
    stop.logger = node.get_logger()
    context = node.context
    executor = MultiThreadedExecutor(num_threads=num_threads)
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor,), name='hybridgl_spin', daemon=True)
    spinner.start()
    while spinner.is_alive() and not stop.event.wait(0.5):
        pass
    arm_exit_bound()  # until the process ends: a deadlock cannot keep it
    reason = f'the node is shutting down ({stop.name or "ROS shut down"})'
    still_running = node.stop_serving(reason)
    node.wait_answered(ANSWER_GRACE_S)
    time.sleep(SEND_GRACE_S)
    _shutdown_executor(executor)
    spinner.join(THREAD_GRACE_S)  # its wait set holds the context until it returns
    node.destroy_node()
    rclpy.try_shutdown()
    if still_running or _threads_left(THREAD_GRACE_S):
        # The caller will os._exit (a normal exit with torch still running can abort), which
        # runs no finalisers: free what rclpy frees now. Measured: one of the node's Fast DDS
        # shared-memory segments can still stay behind in /dev/shm on this path.
        context.destroy()
        return True
    return False


def arm_exit_bound(seconds: float = EXIT_BOUND_S) -> None:
    """In ``seconds`` the process writes every thread's stack to stderr and exits with code 1,
    even while a thread blocks in C with the GIL held (faulthandler's watchdog is a C thread).
    One bound at a time: arming again replaces it."""
    faulthandler.dump_traceback_later(seconds, exit=True)


@contextlib.contextmanager
def exit_bound(seconds: float = EXIT_BOUND_S):
    """:func:`arm_exit_bound` for the block: the process ends if the block has not."""
    arm_exit_bound(seconds)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def exit_now(code: int = 0) -> None:
    """Leaves the process at once (threads still busy in torch are not waited for)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _spin(executor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def _shutdown_executor(executor) -> None:
    """Stops the executor without joining a thread that is still busy (e.g. loading models)."""
    if 'wait_for_threads' in inspect.signature(executor.shutdown).parameters:  # Jazzy and later
        executor.shutdown(timeout_sec=0.0, wait_for_threads=False)
    else:
        threading.Thread(target=executor.shutdown, kwargs={'timeout_sec': 0.0},
                         daemon=True).start()


def _threads_left(timeout_s: float) -> bool:
    """Whether a non-daemon thread is still alive after ``timeout_s`` (busy executor threads)."""
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    return any(t.is_alive() and not t.daemon and t is not threading.main_thread()
               for t in threading.enumerate())
