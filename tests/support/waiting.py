"""Waiting for what a real process does, with a bound and a message that says what did not happen."""
import time


def wait_until(condition, timeout, what, interval=0.1, ignoring=()):
    """``condition()``'s first true value within ``timeout`` s, polled every ``interval`` s; an exception in
    ``ignoring`` (e.g. a Redis that is being restarted) counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except ignoring:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")
