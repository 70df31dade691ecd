"""The embedded Redis server: one per instance folder, shared, stoppable, durable, restartable."""
import os
import signal
import time

import redis

from service import embedded_redis
from tests.support.paths import PROJECT_ROOT


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


def _deploy_setting(name):
    for line in (PROJECT_ROOT / "deploy" / "redis.conf").read_text().splitlines():
        if line.split(maxsplit=1)[:1] == [name]:
            return line.split(maxsplit=1)[1]
    raise AssertionError(f"deploy/redis.conf does not set {name}")


def _kill(instance):
    pid = int((embedded_redis.server_dir(instance) / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while embedded_redis.answers(embedded_redis.url_for(instance), timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_as_durable_as_deploy_redis_conf_and_restarted_after_a_crash(tmp_path):
    url = embedded_redis.ensure_server(tmp_path)
    client = redis.Redis.from_url(url)
    try:
        for name in ("appendonly", "appendfsync", "maxmemory-policy"):
            assert client.config_get(name)[name] == _deploy_setting(name), name
        client.rpush("rq:queue:visnet", "a-queued-job")
        time.sleep(1.5)  # fsynced every second
        _kill(tmp_path)
        assert embedded_redis.restart_if_dead(tmp_path) is True
        assert client.lrange("rq:queue:visnet", 0, -1) == [b"a-queued-job"]  # from the append-only file
        assert embedded_redis.restart_if_dead(tmp_path) is False  # answers: left alone
    finally:
        client.close()
        embedded_redis.stop_server(tmp_path)


def test_a_folder_with_only_a_snapshot_keeps_its_data_when_the_append_only_file_starts(tmp_path):
    url = embedded_redis.ensure_server(tmp_path)
    client = redis.Redis.from_url(url)
    try:
        client.config_set("appendonly", "no")  # as an embedded server of an earlier version ran
        client.set("from-the-snapshot", "1")
        embedded_redis.stop_server(tmp_path)  # saves the snapshot
        (embedded_redis.server_dir(tmp_path) / embedded_redis.AOF_FILE).unlink(missing_ok=True)
        embedded_redis.ensure_server(tmp_path)
        assert client.get("from-the-snapshot") == b"1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()
        embedded_redis.stop_server(tmp_path)
