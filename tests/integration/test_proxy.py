"""Issue 10, point 9: a slowloris (clients that send a header byte now and then) holds every thread of
gunicorn alone, but not the service behind nginx with deploy/nginx.conf. Real nginx (Debian's package)
in front of a real gunicorn (the production command, one process of 4 threads, so that the kernel
cannot hand the probe to a process the attack missed), on loopback; each attack lasts a few seconds
and ends by itself."""
import contextlib
import json
import socket
import threading
import time

import pytest
import requests

from tests.support import proxy
from tests.support.servers import Gunicorn, free_port

pytestmark = pytest.mark.integration

SLOW_CLIENTS = 16  # gunicorn here: 1 process × 4 threads
DRIP_SECONDS = 0.5


@contextlib.contextmanager
def slowloris(port: int, clients: int = SLOW_CLIENTS, hold: float = 6.0):
    """``clients`` connections that send a request line, then one header byte every DRIP_SECONDS, for at
    most ``hold`` seconds (well under nginx's 10 s client_header_timeout). Yields a function that says
    how many of them are still open."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(clients)]
    stop = threading.Event()
    broken = []

    def drip():
        for sock in sockets:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        deadline = time.monotonic() + hold
        while not stop.is_set() and time.monotonic() < deadline:
            for sock in sockets:
                try:
                    sock.sendall(b"a")
                except OSError:
                    if sock not in broken:
                        broken.append(sock)
            stop.wait(DRIP_SECONDS)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    time.sleep(2 * DRIP_SECONDS)  # every connection is held by now
    try:
        yield lambda: len(sockets) - len(broken)
    finally:
        stop.set()
        dripper.join(10)
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def gunicorn(service_env, tmp_path_factory):
    server = Gunicorn(service_env, tmp_path_factory.mktemp("proxy") / "gunicorn.log", workers=1)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture
def nginx(gunicorn, tmp_path):
    if proxy.nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)")
    server = proxy.Nginx(tmp_path / "nginx", upstream_port=gunicorn.port)
    server.start()
    yield server
    server.stop()


def test_a_slowloris_does_not_stop_the_service_behind_nginx(nginx):
    assert requests.get(f"{nginx.base}/api/health", timeout=10).status_code == 200  # the path works
    with slowloris(nginx.port) as still_open:
        started = time.monotonic()
        response = requests.get(f"{nginx.base}/api/health", timeout=5)
        assert response.status_code == 200 and response.json()["redis"]["reachable"] is True
        assert time.monotonic() - started < 5
        assert still_open() == SLOW_CLIENTS  # the attack was still on


def test_the_same_slowloris_holds_gunicorn_alone(gunicorn):
    """Why gunicorn is never exposed directly: the attack above, straight to gunicorn, leaves no thread
    for /api/health. It answers again once the slow clients are gone."""
    with slowloris(gunicorn.port):
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(f"{gunicorn.base}/api/health", timeout=3)
    gunicorn.wait_ready(timeout=15)


def test_what_nginx_refuses_itself_is_json(nginx, tmp_path):
    """A body past client_max_body_size (refused from its Content-Length, before any byte of it is
    sent) and a gunicorn that does not answer get the API's error shape, not nginx's HTML."""
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=5) as sock:
        sock.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; "
                     b"boundary=x\r\nContent-Length: 300000000\r\n\r\n")
        answer = sock.recv(65536).decode("latin-1")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413") and "application/json" in head
    assert json.loads(body)["error"]["code"] == "too_large"

    nobody = proxy.Nginx(tmp_path / "nginx-nobody", upstream_port=free_port())  # nothing listens there
    nobody.start()
    try:
        response = requests.get(f"{nobody.base}/api/health", timeout=10)
    finally:
        nobody.stop()
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
