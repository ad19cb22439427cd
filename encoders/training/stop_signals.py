"""SIGINT and SIGTERM during training: stop at the next step boundary, so a snapshot can be saved first.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be, possibly
half-way through an optimiser step, and SIGTERM (sent by Slurm, Kubernetes, `kill`) ends the
process at once. While `StopRequests` is active, either signal only records the request; the loop
finishes its step, saves and stops. A second signal stops at once, without a snapshot.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """A context manager that holds the first stop signal received while it is active."""

    def __init__(self) -> None:
        self.received: str | None = None  # the signal's name, e.g. "SIGINT"
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self.previous = {number: signal.signal(number, self.handle) for number in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def handle(self, number: int, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(number).name
        log.warning("%s received: saving a snapshot after this step, then stopping (send it again to stop at once, "
                    "without the snapshot)", self.received)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: a Ctrl-C reaches the workers too, and a worker that dies of it
    fails the main process before it can save; the main process ends the workers when it stops."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
