"""The collector pause of a scan: restored after, shared by scans that overlap in threads."""

from __future__ import annotations

import gc
import threading

import pytest

from ntropy_provider.utils.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def _collector_enabled_after():
    was = gc.isenabled()
    yield
    if was:
        gc.enable()


def test_the_collector_is_off_inside_and_back_on_after_even_on_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("the scan failed")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_end_with_the_last() -> None:
    gc.enable()
    first_inside, second_inside, first_left = threading.Event(), threading.Event(), threading.Event()

    def second_scan() -> None:
        with gc_paused():
            second_inside.set()
            assert first_left.wait(10)
            observed.append(gc.isenabled())  # the first scan ended: still paused for this one

    observed: list[bool] = []
    thread = threading.Thread(target=second_scan)
    with gc_paused():
        first_inside.set()
        thread.start()
        assert second_inside.wait(10)
    first_left.set()
    thread.join(10)
    assert observed == [False]
    assert gc.isenabled()
