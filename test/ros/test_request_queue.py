"""Calls under load and at shutdown, the node as its own process over DDS: nothing a client
sends vanishes. A burst is served in order up to max_queued_requests and the rest answered
'busy'; calls whose client has left are not computed; SIGINT during a long query answers every
pending call and exits at once; a shutdown that blocks (a DDS deadlock) still ends the process,
with its stacks."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile

from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.ros.shutdown import EXIT_BOUND_S
from hybridgl_ros.srv import SegmentByText
from ros_helpers import (Spinner, call_all, stamp_header, start_process, start_small_node,
                         stop_process, wait_for, wait_until_active)
from small_segmenter import scene_rgb

BURST = 50
MAX_QUEUED = 10
#: A client sending BURST calls at once needs a QoS history that holds them: with rclpy's
#: default (10) its own DDS writer and reader drop requests and responses (see the README).
BURST_CLIENT_QOS = QoSProfile(depth=64)


@pytest.fixture
def small_node(ros_context, ros_env, tmp_path):
    """``small_node(*node_args, ros_args=())`` -> (process, client) in a namespace of its own."""
    made = []

    def start(*node_args, ros_args=(), client_qos=None, with_client=True):
        namespace = f'/q{uuid.uuid4().hex[:8]}'
        process = start_small_node(ros_env, tmp_path / 'node.log', namespace, *node_args,
                                   ros_args=ros_args)
        client_node = Node('client', context=ros_context, namespace=namespace)
        made.append((process, client_node, Spinner(ros_context, client_node)))
        wait_until_active(client_node, f'{namespace}/hybridgl_node')
        if not with_client:
            return process, namespace
        client = client_node.create_client(SegmentByText, f'{namespace}/hybridgl_node/segment',
                                           **({'qos_profile': client_qos} if client_qos else {}))
        assert client.wait_for_service(timeout_sec=20.0), (tmp_path / 'node.log').read_text()
        return process, client

    yield start
    for process, client_node, spinner in made:
        spinner.stop()
        client_node.destroy_node()
        stop_process(process)


def _requests(count, text='red'):
    image = numpy_to_image(scene_rgb(), 'rgb8', stamp_header(1.0))
    return [SegmentByText.Request(text=f'{text} {i}', image=image) for i in range(count)]


def test_a_burst_is_answered_in_full_served_in_order_and_the_excess_refused_busy(small_node):
    process, client = small_node('--query-delay', '0.1', client_qos=BURST_CLIENT_QOS,
                                 ros_args=['-p', f'max_queued_requests:={MAX_QUEUED}'])
    responses = call_all(client, _requests(BURST), timeout=60.0)
    unanswered = [i for i, r in enumerate(responses) if r is None]
    assert not unanswered, f'{len(unanswered)} of {BURST} calls never answered: {unanswered}'
    served = [i for i, r in enumerate(responses) if r.success]
    refused = [r.message for r in responses if not r.success]
    print(f'\n{BURST} calls at once: {len(served)} served, {len(refused)} refused busy')
    assert len(served) >= MAX_QUEUED + 1 and served[0] == 0
    assert [responses[i].result.text for i in served] == [f'red {i}' for i in served]
    for message in refused:
        assert message.startswith('busy: ') and f'max_queued_requests = {MAX_QUEUED}' in message
    assert call_all(client, _requests(1))[0].success  # and the node serves on
    assert stop_process(process) == 0
    log = process.log.read_text()
    assert f'{BURST + 1} taken, {len(served) + 1} served, {len(refused)} refused' in log, log


def test_calls_of_a_client_that_has_left_are_not_computed(small_node, ros_context, ros_env,
                                                           tmp_path):
    """A client queues four calls and its process ends while the first is computed (3 s): the
    other three are not computed (no client is left to read them), and the node serves the
    next client at once. The node's log counts them."""
    process, namespace = small_node('--query-delay', '3.0', with_client=False)
    service = f'{namespace}/hybridgl_node/segment'
    leaving = start_process([sys.executable, str(Path(__file__).with_name('leaving_client.py')),
                             service, '4', '0.5'], ros_env, tmp_path / 'client.log')
    assert leaving.popen.wait(timeout=30.0) == 0, (tmp_path / 'client.log').read_text()
    assert wait_for(lambda: 'a queued call is not computed' in process.log.read_text(),
                    timeout=20.0), process.log.read_text()[-3000:]
    client_node = Node('next_client', context=ros_context, namespace=namespace)
    spinner = Spinner(ros_context, client_node)
    try:
        client = client_node.create_client(SegmentByText, service)
        assert client.wait_for_service(timeout_sec=20.0)
        start = time.monotonic()
        response = call_all(client, _requests(1), timeout=30.0)[0]
        waited_s = time.monotonic() - start
        assert response is not None and response.success, response
        print(f'\nthe next client waited {waited_s:.1f} s (three unread 3 s calls skipped)')
        assert waited_s < 3.0 + 2.0  # its own call, and slack: not three more
    finally:
        spinner.stop()
        client_node.destroy_node()
    assert stop_process(process) == 0
    log = process.log.read_text()
    assert '5 taken, 2 served, 0 refused, 3 unread' in log, log[-3000:]


def test_the_shutdown_transition_during_a_long_query_answers_and_exits_at_once(
        small_node, ros_context, tmp_path):
    """``ros2 lifecycle set /hybridgl_node shutdown`` while a call runs a 60 s prepare (in torch)
    and two wait: the transition is answered at once, so are the calls, and the process exits
    0 within seconds, as after SIGINT (the transition had waited for the running query)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    process, client = small_node('--prepare-torch', '60')
    pending = [client.call_async(request) for request in _requests(3)]
    time.sleep(1.5)  # the first call is in its 60 s prepare, the other two wait behind it
    assert not any(f.done() for f in pending)
    client_node = Node('lifecycle_client', context=ros_context,
                       namespace=client.service_name.rsplit('/', 2)[0])
    spinner = Spinner(ros_context, client_node)
    try:
        change = client_node.create_client(
            ChangeState, client.service_name.rsplit('/', 1)[0] + '/change_state')
        assert change.wait_for_service(timeout_sec=10.0)
        start = time.monotonic()
        response = call_all(change, [ChangeState.Request(
            transition=Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN))], timeout=10.0)[0]
        answered_s = time.monotonic() - start
        rc = process.popen.wait(timeout=20.0)
        exit_s = time.monotonic() - start
    finally:
        spinner.stop()
        client_node.destroy_node()
    log = (tmp_path / 'node.log').read_text()
    print(f'\nshutdown transition during a torch prepare: answered after {answered_s:.2f} s, '
          f'exit code {rc} after {exit_s:.2f} s')
    assert response is not None and response.success, log[-3000:]
    assert answered_s < 3.0 and rc == 0 and exit_s < 5.0, log[-3000:]
    assert 'Traceback' not in log and '[ERROR]' not in log, log[-3000:]
    for future in pending:
        assert future.done(), 'a call was left without an answer'
        assert future.result().message == 'the node is shutting down (lifecycle shutdown)'


def test_sigint_during_a_long_query_answers_every_call_and_exits_at_once(small_node, tmp_path):
    process, client = small_node('--prepare-torch', '60')
    pending = [client.call_async(request) for request in _requests(3)]
    time.sleep(1.5)  # the first call is in its 60 s prepare, the other two wait behind it
    assert not any(f.done() for f in pending)
    start = time.monotonic()
    os.killpg(process.popen.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(process.popen.pid, signal.SIGINT)  # a second one, as an impatient user does
    rc = process.popen.wait(timeout=20.0)
    exit_s = time.monotonic() - start
    log = (tmp_path / 'node.log').read_text()
    print(f'\nSIGINT during a torch prepare: exit code {rc} after {exit_s:.2f} s')
    assert rc == 0 and 'Traceback' not in log and 'KeyboardInterrupt' not in log, log[-3000:]
    assert exit_s < 3.0, log[-3000:]
    deadline = time.monotonic() + 5.0
    while not all(f.done() for f in pending) and time.monotonic() < deadline:
        time.sleep(0.02)
    for future in pending:
        assert future.done(), 'a call was left without an answer'
        response = future.result()
        assert not response.success and 'shutting down (SIGINT)' in response.message


def test_a_shutdown_that_blocks_in_c_ends_the_process_with_its_stacks_at_the_bound(
        small_node, tmp_path):
    process, client = small_node('--block-in-destroy')
    assert call_all(client, _requests(1))[0].success
    start = time.monotonic()
    os.killpg(process.popen.pid, signal.SIGINT)
    rc = process.popen.wait(timeout=EXIT_BOUND_S + 20.0)
    exit_s = time.monotonic() - start
    log = (tmp_path / 'node.log').read_text()
    print(f'\nSIGINT, destroy_node blocked in C: exit code {rc} after {exit_s:.1f} s')
    assert rc == 1 and EXIT_BOUND_S - 1.0 < exit_s < EXIT_BOUND_S + 3.0, log[-3000:]
    assert f'Timeout (0:00:{EXIT_BOUND_S:02.0f})!' in log, log[-3000:]
    assert 'in destroy_node_blocked' in log and 'in run_until_stopped' in log, log[-3000:]


def test_exit_bound_ends_a_process_blocked_in_c_and_lets_a_finished_block_go(tmp_path):
    """The bound the image publisher and the demo's client put on their ROS teardown."""
    run = ('import ctypes, sys, time\n'
           'from hybridgl_ros.ros.shutdown import exit_bound\n'
           'with exit_bound(1.0):\n'
           '    if sys.argv[1] == "block":\n'
           '        ctypes.PyDLL(None).sleep(30)\n'
           'time.sleep(1.5)\n'
           'print("left the block")\n')
    for what, code, seconds in (('block', 1, (0.9, 5.0)), ('pass', 0, (1.4, 8.0))):
        start = time.monotonic()
        done = subprocess.run([sys.executable, '-c', run, what], capture_output=True, text=True,
                              timeout=30, cwd=tmp_path)
        took = time.monotonic() - start
        assert done.returncode == code and seconds[0] < took < seconds[1], (what, took, done)
        assert ('Timeout (0:00:01)!' in done.stderr) == (what == 'block'), done.stderr
        assert ('left the block' in done.stdout) == (what == 'pass')
