"""Reading ahead: items come back in order, loaded on another thread ahead of the caller; a failed load
is raised at its item."""
import threading

import pytest

from visnet.scan.prefetch import prefetched


def test_items_come_in_order_loaded_ahead_on_another_thread():
    loaded = {index: threading.Event() for index in range(5)}
    threads = set()

    def load(index):
        threads.add(threading.current_thread().name)
        loaded[index].set()
        return index * 10

    seen = []
    for value in prefetched(load, range(5), depth=2):
        index = value // 10
        if index + 1 < 5:  # the next item is loaded while this one is in use
            assert loaded[index + 1].wait(timeout=30)
        seen.append(value)
    assert seen == [0, 10, 20, 30, 40]
    assert threading.current_thread().name not in threads and len(threads) == 1


def test_a_failed_load_is_raised_at_its_item():
    def load(index):
        if index == 2:
            raise OSError("unreadable")
        return index

    seen = []
    with pytest.raises(OSError, match="unreadable"):
        for value in prefetched(load, range(5)):
            seen.append(value)
    assert seen == [0, 1]
