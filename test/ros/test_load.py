"""Load: 200 sequential calls and 4 concurrent clients all answered with flat memory; a 30 Hz
640x480 stream during a slow query neither queues nor grows the node's memory."""
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from hybridgl_ros.ros.conversions import numpy_to_image
from hybridgl_ros.srv import SegmentByText
from ros_helpers import Spinner, call, stamp_header, start_process, stop_process, vm_rss_kib
from small_segmenter import scene_rgb

SMALL_NODE = Path(__file__).resolve().parent / 'small_node.py'
H, W = 480, 640
MAX_GROWTH = 1.05
#: 1 s queries under the stream before the baseline: the node's memory settles in ~8 s
STREAM_WARM_UP_QUERIES = 8


class _NodeProcess:
    """The node as its own process (small segmenter) and a client side in this process."""

    def __init__(self, context, env, log_path, *node_args):
        self.namespace = f'/l{uuid.uuid4().hex[:8]}'
        self.log_path = log_path
        self.process = start_process(
            [sys.executable, SMALL_NODE, *node_args, '--ros-args', '-r',
             f'__ns:={self.namespace}', '-p', 'max_image_age_s:=0.0'], env, log_path)
        self.nodes = [Node(f'client{i}', context=context, namespace=self.namespace)
                      for i in range(4)]
        self.clients = [n.create_client(SegmentByText, f'{self.namespace}/hybridgl_node/segment')
                        for n in self.nodes]
        self.image_pub = self.nodes[0].create_publisher(Image, 'image', QoSProfile(depth=1))
        self.spinner = Spinner(context, *self.nodes)
        if not all(client.wait_for_service(timeout_sec=20.0) for client in self.clients):
            self.close()  # else the node process outlives the test
            raise AssertionError(f'no service after 20 s:\n{log_path.read_text()}')

    def publish(self, seconds):
        self.image_pub.publish(numpy_to_image(scene_rgb(H, W), 'rgb8', stamp_header(seconds)))

    def segment(self, client_index=0, text='the red square', timeout=20.0):
        return call(self.clients[client_index], SegmentByText.Request(text=text), timeout)

    def wait_for_frame(self):
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            self.publish(1.0)
            if self.segment().success:
                return
            time.sleep(0.1)
        raise AssertionError('the node never received a frame')

    def rss_kib(self):
        return vm_rss_kib(self.process.popen.pid)

    def rss_median_kib(self, samples=5, period_s=0.2):
        """Median of a few samples: ignores a transient peak (a frame being copied)."""
        values = []
        for _ in range(samples):
            values.append(self.rss_kib())
            time.sleep(period_s)
        return statistics.median(values)

    def close(self):
        self.spinner.stop()
        for node in self.nodes:
            node.destroy_node()
        return stop_process(self.process)


@pytest.fixture
def node_process(ros_context, ros_env, tmp_path):
    made = []

    def make(*node_args):
        made.append(_NodeProcess(ros_context, ros_env, tmp_path / 'node.log', *node_args))
        return made[-1]

    yield make
    for proc in made:
        assert proc.close() == 0, proc.log_path.read_text()[-3000:]


def _concurrent_calls(proc, calls):
    """Each of the process's clients makes ``calls`` calls, all clients at once; their
    successes per client."""
    answers = [[] for _ in proc.clients]

    def client_loop(index):
        for _ in range(calls):
            answers[index].append(proc.segment(index).success)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(len(answers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120.0)
    return answers


def test_sequential_and_concurrent_calls_are_answered_with_flat_memory(node_process):
    proc = node_process()
    proc.wait_for_frame()
    for _ in range(30):  # warm-up: allocator pools, caches, DDS buffers
        assert proc.segment().success
    # ... and the concurrent pattern once: the first concurrent calls bring the node's
    # threads their first allocations (per-thread allocator arenas), not a leak
    assert [len(a) for a in _concurrent_calls(proc, 5)] == [5] * 4
    rss_warm = proc.rss_median_kib()
    round_trips = []
    for i in range(200):
        start = time.perf_counter()
        response = proc.segment(text='the red square' if i % 2 else 'the blue disc')
        round_trips.append((time.perf_counter() - start) * 1000.0)
        assert response.success, response.message
    answers = _concurrent_calls(proc, 25)
    assert [len(a) for a in answers] == [25] * 4 and all(all(a) for a in answers)
    rss_end = proc.rss_median_kib()
    print(f'\n{W}x{H} round trip: median {statistics.median(round_trips):.1f} ms, '
          f'p95 {sorted(round_trips)[189]:.1f} ms; node RSS after warm-up {rss_warm / 1024:.1f} '
          f'MiB, after 300 more calls {rss_end / 1024:.1f} MiB '
          f'({100.0 * (rss_end / rss_warm - 1):+.2f}%)')
    assert rss_end < rss_warm * MAX_GROWTH


def test_30hz_stream_during_slow_queries_does_not_grow_memory(node_process):
    proc = node_process('--query-delay', '1.0')
    proc.wait_for_frame()
    stop = threading.Event()
    published = []

    def stream():  # stamps are seconds since the stream started (+2 s)
        start = next_at = time.monotonic()
        while not stop.is_set():
            proc.publish(2.0 + time.monotonic() - start)
            published.append(time.monotonic() - start)
            next_at += 1 / 30
            time.sleep(max(0.0, next_at - time.monotonic()))

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        warm_up = [proc.segment() for _ in range(STREAM_WARM_UP_QUERIES)]
        rss_warm = proc.rss_median_kib()
        slow = [proc.segment() for _ in range(3)]  # 3 s of queries with frames arriving
        rss_end = proc.rss_median_kib()
    finally:
        stop.set()
        streamer.join(timeout=5.0)
    assert all(r.success for r in warm_up + slow)
    stamps = [r.result.header.stamp.sec + r.result.header.stamp.nanosec * 1e-9 for r in slow]
    assert stamps[1] > stamps[0] + 0.9  # frames kept arriving while a query ran
    rate = len(published) / published[-1]
    print(f'\n{rate:.0f} Hz stream ({len(published)} frames of {W}x{H}) during 1 s queries: '
          f'node RSS {rss_warm / 1024:.1f} -> {rss_end / 1024:.1f} MiB '
          f'({100.0 * (rss_end / rss_warm - 1):+.2f}%)')
    assert rss_end < rss_warm * MAX_GROWTH
