"""Read ahead: the next items are loaded on a thread while the caller works on the current one.

A scan's chunk decodes and resizes each image (Pillow) and then runs it through the network
(``session.run``); both release the GIL, so with the loading of image n + 1 on a thread the network
never waits for the disk or the decoder. The network still sees one image per run, in order, so the
scan's figures are the same bits as without the thread.
"""
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

PREFETCH_DEPTH = 2  # items loaded ahead of the one in use: enough to hide a slow decode behind one run


def prefetched(load, items, depth: int = PREFETCH_DEPTH):
    """``load(item)`` for each of ``items``, in order, each computed on one background thread up to ``depth``
    items ahead of the caller. An exception from ``load`` is raised here, at its item; stopping early waits
    only for the loads already started."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = deque(pool.submit(load, item) for item in islice(items, depth))
        while pending:
            future = pending.popleft()
            pending.extend(pool.submit(load, item) for item in islice(items, 1))
            yield future.result()
