"""Per-client rate limits (app.ratelimit): counted in Redis, answered as a 429 with Retry-After, the
same budget for every web process, and not bypassed by a made-up X-Forwarded-For."""
import io
import re
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from app import create_app
from app.ratelimit import KEY_PREFIX, client_key
from tests.support.paths import ARTIFACTS
from tests.support.servers import Gunicorn

MISSING_JOB = "/api/jobs/" + "b" * 32


def limited_app(app_config, **limits):
    return create_app({**app_config, "RATE_LIMIT_SUBMIT": 3, "RATE_LIMIT_READ": 5, "RATE_LIMIT_WINDOW": 60,
                       **limits})


def post_image(client, images, **kwargs):
    return client.post("/api/jobs", data={"image": (io.BytesIO(images.photo_jpeg()), "a.jpg")},
                       content_type="multipart/form-data", **kwargs)


def test_submissions_past_the_limit_are_a_429_with_retry_after(app_config, images, check_against_spec):
    client = limited_app(app_config).test_client()
    answers = [post_image(client, images) for _ in range(3)]
    assert [response.status_code for response in answers] == [202, 202, 202]  # the same job, reused
    assert [response.headers["X-RateLimit-Remaining"] for response in answers] == ["2", "1", "0"]
    assert all(response.headers["X-RateLimit-Limit"] == "3" for response in answers)

    refused = post_image(client, images)
    assert refused.status_code == 429
    body = refused.get_json()
    check_against_spec("/api/jobs", "post", 429, body)
    assert body["error"]["code"] == "rate_limited" and "3 per 60 s" in body["error"]["message"]
    retry_after = int(refused.headers["Retry-After"])
    assert 55 <= retry_after <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Reads have their own budget, and health is never counted.
    assert client.get(MISSING_JOB).status_code == 404
    assert client.get("/api/health").status_code == 200


def test_reads_have_their_own_limit_and_health_and_static_are_not_counted(app_config, check_against_spec):
    client = limited_app(app_config).test_client()
    for _ in range(20):
        assert client.get("/api/health").status_code == 200
        assert client.get("/static/style.css").status_code == 200
    assert [client.get(MISSING_JOB).status_code for _ in range(5)] == [404] * 5
    refused = client.get(MISSING_JOB)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    check_against_spec("/api/jobs/{job_id}", "get", 429, refused.get_json())
    assert client.get("/").status_code == 429  # pages share the read budget
    assert "too many requests" in client.get("/").get_data(as_text=True)


def test_the_upload_form_past_the_limit_shows_a_page_with_retry_after(app_config, images):
    client = limited_app(app_config, RATE_LIMIT_SUBMIT=1).test_client()
    form = {"preset": "pools", "top_k": "3"}
    first = client.post("/jobs", data={**form, "image": (io.BytesIO(images.photo_jpeg()), "a.jpg")},
                        content_type="multipart/form-data")
    assert first.status_code == 303
    second = client.post("/jobs", data={**form, "image": (io.BytesIO(images.photo_jpeg()), "a.jpg")},
                         content_type="multipart/form-data")
    assert second.status_code == 429 and second.mimetype == "text/html"
    assert "Retry-After" in second.headers and "too many submissions" in second.get_data(as_text=True)


def test_a_spoofed_x_forwarded_for_does_not_get_a_fresh_budget(app_config):
    client = limited_app(app_config).test_client()
    statuses = [client.get(MISSING_JOB, headers={"X-Forwarded-For": f"198.51.100.{n}"},
                           environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code for n in range(8)]
    assert statuses == [404] * 5 + [429] * 3
    # Another address has its own budget.
    assert client.get(MISSING_JOB, environ_base={"REMOTE_ADDR": "203.0.113.10"}).status_code == 404


def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_saw(app_config):
    """One trusted proxy appends the peer it saw to X-Forwarded-For: that entry is the client, and
    whatever the client put in front of it changes nothing."""
    client = limited_app(app_config, TRUSTED_PROXIES=1).test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    statuses = [client.get(MISSING_JOB, environ_base=proxy,
                           headers={"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.7"}).status_code for n in range(7)]
    assert statuses == [404] * 5 + [429] * 2
    other = client.get(MISSING_JOB, environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.8"})
    assert other.status_code == 404  # another client behind the same proxy


def test_ipv6_clients_are_counted_per_64(app_config):
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("203.0.113.9") == "203.0.113.9"
    client = limited_app(app_config).test_client()
    statuses = [client.get(MISSING_JOB, environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{n:x}"}).status_code
                for n in range(1, 8)]
    assert statuses == [404] * 5 + [429] * 2


def test_result_pictures_have_their_own_budget(app_config):
    """A scan page shows thousands of thumbnails: they must not use up the polls' budget, and they
    have a limit of their own."""
    client = limited_app(app_config, RATE_LIMIT_READ=2, RATE_LIMIT_FILES=4).test_client()
    job_file = f"/api/jobs/{'c' * 32}/files/missing.png"
    scan_file = f"/api/scans/{'d' * 32}/files/thumbs/missing.jpg"
    assert [client.get(path).status_code for path in (job_file, scan_file, job_file, scan_file)] == [404] * 4
    refused = client.get(job_file)
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Limit"] == "4"
    assert [client.get(MISSING_JOB).status_code for _ in range(3)] == [404, 404, 429]


def test_the_window_reopens_after_it_closes(app_config):
    client = limited_app(app_config, RATE_LIMIT_READ=2, RATE_LIMIT_WINDOW=1).test_client()
    assert [client.get(MISSING_JOB).status_code for _ in range(3)] == [404, 404, 429]
    time.sleep(1.1)
    assert client.get(MISSING_JOB).status_code == 404


def test_a_counter_without_an_expiry_gets_the_window_again(app_config):
    """No counter should lack one (the script gives it its expiry as it opens the window), but one that did would
    refuse its client for good: the next request gives it the window."""
    app = limited_app(app_config, RATE_LIMIT_READ=2, RATE_LIMIT_WINDOW=60)
    connection = redis.Redis.from_url(app.config["REDIS_URL"])
    key = f"{KEY_PREFIX}:read:127.0.0.1"  # the test client's address
    connection.set(key, 5)
    refused = app.test_client().get(MISSING_JOB)
    assert refused.status_code == 429 and 59 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0" and refused.headers["X-RateLimit-Reset"] == \
        refused.headers["Retry-After"]
    assert 0 < connection.pttl(key) <= 60_000 and int(connection.get(key)) == 6


def test_a_limit_of_zero_switches_the_limit_off(app_config):
    client = limited_app(app_config, RATE_LIMIT_READ=0).test_client()
    responses = [client.get(MISSING_JOB) for _ in range(12)]
    assert {response.status_code for response in responses} == {404}
    assert "X-RateLimit-Limit" not in responses[-1].headers


def test_unknown_paths_use_the_read_budget(app_config):
    client = limited_app(app_config, RATE_LIMIT_READ=2).test_client()
    assert [client.get(path).status_code for path in ("/api/nothing", "/nothing", "/api/nothing")] == [404, 404, 429]


def test_without_redis_nothing_is_counted_and_pages_still_load(app_config, tmp_path, caplog):
    client = limited_app(app_config, RATE_LIMIT_READ=2,
                         REDIS_URL=f"unix://{tmp_path}/nothing-here.sock").test_client()
    responses = [client.get("/") for _ in range(4)]
    assert [response.status_code for response in responses] == [200] * 4
    assert "X-RateLimit-Limit" not in responses[-1].headers
    said = [record for record in caplog.records if record.name == "app.ratelimit"]
    assert said and all(record.exc_info is None and "Redis is not reachable" in record.getMessage()
                        for record in said)  # a line per request, not a traceback


def test_simultaneous_requests_are_counted_exactly(app_config):
    app = limited_app(app_config, RATE_LIMIT_READ=10)
    statuses, barrier = [], threading.Barrier(24)

    def read():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.get(MISSING_JOB).status_code)

    threads = [threading.Thread(target=read) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [404] * 10 + [429] * 14


# --- the live gunicorn: two processes, one budget ------------------------------------------------

@pytest.fixture
def limited_gunicorn(redis_instance, tmp_path):
    """gunicorn (2 processes) with a read limit of 12 per hour on Redis database 2, logging the pid
    of the process that answered each request."""
    url = f"{redis_instance['url']}?db=2"
    redis.Redis.from_url(url).flushdb()
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": url, "RESULTS_DIR": str(tmp_path / "results"),
           "UPLOAD_DIR": str(tmp_path / "uploads"), "VISNET_INSTANCE_DIR": str(redis_instance["instance"]),
           "VISNET_QUEUE": "visnet-ratelimit-test", "VISNET_RATE_LIMIT_READ": "12", "VISNET_RATE_LIMIT_WINDOW": "3600",
           "VISNET_CLEANUP_INTERVAL": "0", "PYTHONUNBUFFERED": "1"}
    server = Gunicorn(env, ARTIFACTS / "gunicorn-ratelimit.log", workers=2,
                      extra_args=("--access-logformat", "served-by %(p)s %(s)s %(U)s"))
    try:
        yield server.wait_ready().base, server.log_path
    finally:
        server.stop()


def test_gunicorn_processes_share_one_budget(limited_gunicorn):
    base, log_path = limited_gunicorn
    statuses = []
    for attempt in range(200):
        # A new connection each time, so either process may accept it; the header is ignored.
        response = requests.get(base + MISSING_JOB, headers={"X-Forwarded-For": f"192.0.2.{attempt % 250}",
                                                              "Connection": "close"}, timeout=10)
        statuses.append(response.status_code)
        pids = set(re.findall(r"served-by <(\d+)> \d+ " + re.escape(MISSING_JOB), Path(log_path).read_text()))
        if attempt >= 30 and len(pids) >= 2:
            break
    assert len(pids) >= 2, "one gunicorn process answered every request; cannot show that they share counts"
    assert statuses[:12] == [404] * 12
    assert set(statuses[12:]) == {429}
    refused = requests.get(base + MISSING_JOB, timeout=10)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) > 3000
    assert requests.get(base + "/api/health", timeout=10).status_code in (200, 503)  # never limited
