"""The node's request queue: every service call is taken off the wire at once and answered.

Why: rclpy sends a service response when the callback returns, and a plain callback holds an
executor thread until then. Calls that arrive meanwhile wait in the service's DDS history (kept
whole, ``KEEP_ALL``), and with a history that keeps only the last N what does not fit there is
dropped: the caller never gets an answer. Here the service callback
is a coroutine (:meth:`RequestQueue.call`): it puts the call into a bounded FIFO and awaits its
answer, which frees the executor thread at once, so the executor keeps taking calls off the
wire. One worker thread serves the FIFO in order of arrival. A call that finds the FIFO full is
answered without waiting (``busy: N queued``); on shutdown every waiting and running call is
answered with the reason (``success = false``).

A call whose client has gone from the graph by the time its turn comes is not computed
(``listened``: no client of the service is left, e.g. the planner that queued it crashed): it
is answered at once ("not computed") and counted ``unread``. While any client of the service
is there, every call is served: a service request does not say which client sent it.

Refusals leave at most one per ``REFUSAL_SPACING_S``: a client keeps its unread responses in
its own DDS history, so refusing a burst within a millisecond could overflow it. A client that
sends more calls at once than its own QoS history depth (rclpy's default: 10) must make that
depth larger: beyond it, its own DDS writer and reader drop requests and responses before this
node can see them (measured: see the README). :attr:`RequestQueue.counts` says what this side
took, served, refused and left unread.

Order: the executor takes one request of a service at a time and the coroutine enqueues it a few
bytecodes later, on the same thread, so calls are served in the order they were taken.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from rclpy.task import Future

LOG = logging.getLogger(__name__)
REFUSAL_SPACING_S = 0.005
UNREAD = ('not computed: no client of the service was left to read the answer (its caller '
          'had gone when its turn came)')


class Ticket:
    """One service call: its request, the response to fill and the future its coroutine awaits.

    Args:
        request: the service request.
        response: the response object rclpy made for it.
        wake: called after the answer is set (wakes the executor that resumes the coroutine).
    """

    def __init__(self, request, response, wake: Callable[[], None]) -> None:
        self.request = request
        self.response = response
        self.future: Future = Future()
        self._wake = wake
        self._lock = threading.Lock()

    @property
    def answered(self) -> bool:
        return self.future.done()

    def answer(self, success: bool, message: str, result: Any = None) -> bool:
        """Sets the response once; later answers are ignored. Returns whether this one counted."""
        with self._lock:
            if self.future.done():
                return False
            self.response.success, self.response.message = success, message
            if result is not None:
                self.response.result = result
            self.future.set_result(self.response)
        self._wake()
        return True


class RequestQueue:
    """A bounded FIFO of service calls served one at a time by a worker thread.

    Args:
        serve: answers one ticket (runs on the worker thread; must call ``ticket.answer``).
        idle: called by the worker about every ``idle_period_s`` while nothing is queued.
        wake: wakes the executor (so it resumes coroutines whose answer is set).
        max_queued: calls that may wait behind the running one; more are refused at once.
        idle_period_s: how often ``idle`` runs while the queue is empty [s].
        listened: whether a client could still read an answer (checked as each call's turn
            comes; None = always).
    """

    def __init__(self, serve: Callable[[Ticket], None], *, idle: Callable[[], None] | None = None,
                 wake: Callable[[], None] = lambda: None, max_queued: int = 10,
                 idle_period_s: float = 0.02, listened: Callable[[], bool] | None = None
                 ) -> None:
        self._serve, self._idle, self._wake = serve, idle, wake
        self._listened = listened
        self.max_queued = max_queued
        self._idle_period_s = idle_period_s
        self._waiting: deque[Ticket] = deque()
        self._current: Ticket | None = None
        self._closed = ''
        self._awaiting = 0  # coroutines that have not returned their response yet
        self._refusals: deque[tuple[Ticket, str]] = deque()
        self._counts = {'taken': 0, 'served': 0, 'refused': 0, 'unread': 0}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name='hybridgl_requests', daemon=True)
        self._thread.start()
        threading.Thread(target=self._refuse_paced, name='hybridgl_refusals', daemon=True).start()

    async def call(self, request, response):
        """The service callback: queues the call and returns its response when answered."""
        ticket = self._submit(request, response)
        try:
            return await ticket.future
        finally:
            with self._cond:
                self._awaiting -= 1
                self._cond.notify_all()

    def _submit(self, request, response) -> Ticket:
        """Queues a call, or hands it to the refusals when the queue is full or closed."""
        ticket = Ticket(request, response, self._wake)
        with self._cond:
            self._awaiting += 1
            self._counts['taken'] += 1
            closed, busy = self._closed, self._busy_reason()
            if closed or busy:
                self._counts['refused'] += 1
            if busy and not closed:
                self._refusals.append((ticket, busy))
            elif not closed:
                self._waiting.append(ticket)
            self._cond.notify_all()
        if closed:  # the refusal thread may be gone: answer here
            ticket.answer(False, closed)
        return ticket

    def _busy_reason(self) -> str:
        queued = len(self._waiting)
        if queued + (self._current is not None) <= self.max_queued:
            return ''
        return (f'busy: {queued} queued behind the running query (max_queued_requests = '
                f'{self.max_queued}); call again later')

    @property
    def busy(self) -> bool:
        """Whether a call is being served right now."""
        with self._cond:
            return self._current is not None

    @property
    def closed(self) -> bool:
        with self._cond:
            return bool(self._closed)

    @property
    def counts(self) -> dict[str, int]:
        """Calls taken off the wire, served (the worker ran them), refused at once and not
        computed because no client was left to read the answer (unread)."""
        with self._cond:
            return dict(self._counts)

    def close(self, reason: str) -> int:
        """Answers every waiting and running call with ``reason`` (success = false) and refuses
        new ones with it; the worker stops after the call it is serving. Returns how many calls
        were answered."""
        with self._cond:
            self._closed = reason
            tickets = ([self._current] if self._current else []) + list(self._waiting)
            self._waiting.clear()
            self._refusals.extend((ticket, reason) for ticket in tickets)
            self._cond.notify_all()
        return len(tickets)

    def wait_answered(self, timeout_s: float) -> bool:
        """Waits until every call's coroutine has returned its response to rclpy."""
        with self._cond:
            return self._cond.wait_for(lambda: self._awaiting == 0, timeout_s)

    def join(self, timeout_s: float) -> bool:
        """Waits for the worker thread to stop (after :meth:`close`); whether it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            ticket = self._next()
            if ticket is None:
                with self._cond:
                    if self._closed:
                        return
                if self._idle is not None:
                    self._idle()
                continue
            if self._listened is not None and not self._listened():
                self._answer_unread(ticket)
                continue
            with self._cond:
                self._counts['served'] += 1
            try:
                self._serve(ticket)
            except Exception as exc:  # a caller is never left without an answer
                LOG.exception('serving a call failed')
                ticket.answer(False, f'internal error: {type(exc).__name__}: {exc}')
            finally:
                with self._cond:
                    self._current = None

    def _answer_unread(self, ticket: Ticket) -> None:
        with self._cond:
            self._counts['unread'] += 1
            self._current = None
        ticket.answer(False, UNREAD)

    def _refuse_paced(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._refusals or self._closed)
                if not self._refusals:  # closed and every refusal answered
                    return
                ticket, reason = self._refusals.popleft()
            ticket.answer(False, reason)
            time.sleep(REFUSAL_SPACING_S)

    def _next(self) -> Ticket | None:
        with self._cond:
            if not self._waiting and not self._closed:
                self._cond.wait(self._idle_period_s)
            if self._closed or not self._waiting:
                return None
            self._current = self._waiting.popleft()
            return self._current
