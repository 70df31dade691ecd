"""Worker presence keys: a killed worker disappears within seconds."""
import time

from service import presence


def test_heartbeat_marks_alive_and_stop_marks_gone(redis_conn):
    beat = presence.Heartbeat(redis_conn, "w1", {"weights": "hed"}, interval=0.05).start()
    try:
        assert presence.is_alive(redis_conn, "w1")
        time.sleep(0.2)
        assert presence.alive_workers(redis_conn) == [{"name": "w1", "weights": "hed"}]
        assert 0 < redis_conn.ttl(presence.ALIVE_PREFIX + "w1") <= presence.ALIVE_TTL_SECONDS
    finally:
        beat.stop()
    assert not presence.is_alive(redis_conn, "w1") and presence.alive_workers(redis_conn) == []


def test_no_name_is_never_alive(redis_conn):
    assert presence.is_alive(redis_conn, None) is False and presence.is_alive(redis_conn, "") is False
