"""Ctrl-C at a safe point: the first SIGINT sets a flag, the second interrupts at once."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dml_bench.train.interrupt import stop_requests


def test_first_sigint_sets_the_flag_second_raises_and_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_requests() as stop:
        assert stop.requested is False
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested is True  # no KeyboardInterrupt: the loop stops at a step boundary
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def worker() -> None:
        with stop_requests() as stop:
            seen.append(stop.requested)
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [False, before]
