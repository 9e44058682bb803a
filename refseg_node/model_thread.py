"""The one thread that runs every call into torch for the node: load, inference, release.

Every call into torch (loading, inference, release) runs on :class:`ModelThread`. libgomp keeps
an OpenMP team for each thread that enters a parallel region, and once a process holds more
OpenMP threads than CPUs it stops spinning between parallel regions: every operator of a forward
pass then pays a futex wake-up. The node used to load the model in its executor thread and run it
in the worker: two teams, and the model ran 1.5-1.7x slower in the node than alone (measured on 2
cores, 2026-12-01: 27 ms against 17 ms per 640x480 frame; all in one thread, 17.8 ms). The
worker's loop runs on that thread too: a frame reaches the model in one wake-up (executor ->
model thread) instead of three (executor -> worker -> model thread -> worker).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future


class ModelThread:
    """One thread that runs every call into torch for the node (see the module's docstring).

    While the node is active the worker's loop itself runs on this thread (:meth:`submit`ted
    once), so a frame goes from the executor's callback to the model in one wake-up, not three;
    calls made meanwhile (the service, the release) wait in a queue that the loop runs between
    frames (:meth:`run_pending`). ``cv`` is shared with the loop's own scheduler, so a queued
    call wakes it.
    """

    def __init__(self, cv: threading.Condition | None = None) -> None:
        """Start no thread yet: the first :meth:`submit` does."""
        self.cv = cv if cv is not None else threading.Condition()
        self._calls: deque[tuple[Future, Callable, tuple, dict]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def on_thread(self) -> bool:
        """Return whether the caller is the model thread."""
        return threading.current_thread() is self._thread

    def call(self, fn: Callable, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the model thread; return its result or raise its error."""
        if self.on_thread():
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)`` for the model thread; return its future."""
        future: Future = Future()
        with self.cv:
            if self._closed:
                raise RuntimeError("the model thread is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="refseg-model",
                                                daemon=True)
                self._thread.start()
            self._calls.append((future, fn, args, kwargs))
            self.cv.notify_all()
        return future

    def pending(self) -> bool:
        """Return whether calls wait in the queue."""
        with self.cv:
            return bool(self._calls)

    def run_pending(self) -> None:
        """Run the queued calls (on the model thread: from a long call such as the worker)."""
        while True:
            with self.cv:
                if not self._calls:
                    return
                item = self._calls.popleft()
            self._run(item)

    def close(self) -> None:
        """Let the thread finish its calls and end (no call after this)."""
        with self.cv:
            self._closed = True
            self.cv.notify_all()
        if self._thread is not None and not self.on_thread():
            self._thread.join()

    @staticmethod
    def _run(item) -> None:
        future, fn, args, kwargs = item
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - the caller gets it through the future
            future.set_exception(err)
        else:
            future.set_result(result)

    def _main(self) -> None:
        while True:
            with self.cv:
                while not self._calls and not self._closed:
                    self.cv.wait()
                if not self._calls:
                    return
            self.run_pending()
