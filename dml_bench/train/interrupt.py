"""Ctrl-C that stops at a safe point.

The first SIGINT only sets a flag; the loop checks it after each optimiser step (and embedding
batch), checkpoints a consistent state and stops. A second SIGINT raises KeyboardInterrupt at once.
Outside the main thread (where signal handlers cannot be installed) Ctrl-C behaves as usual.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType


@dataclass
class StopFlag:
    requested: bool = False


@contextlib.contextmanager
def stop_requests() -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
