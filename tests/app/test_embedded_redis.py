"""The embedded Redis server: one per instance folder, shared, stoppable."""
import redis

from app import embedded_redis


def test_start_share_and_stop(tmp_path):
    url = embedded_redis.ensure_server(tmp_path)
    try:
        assert url == embedded_redis.url_for(tmp_path) and url.startswith("unix://")
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert embedded_redis.ensure_server(tmp_path) == url  # found running, not started twice
        assert client.get("k") == b"v"
        client.close()
    finally:
        assert embedded_redis.stop_server(tmp_path) is True
    assert not embedded_redis.answers(url)
    assert embedded_redis.stop_server(tmp_path) is False


def test_a_deep_instance_folder_gets_a_short_socket_path(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = embedded_redis.socket_path(deep)
    assert len(str(path)) <= 100
    assert path == embedded_redis.socket_path(deep)  # stable, so every process finds it
