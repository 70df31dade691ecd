"""A local stand-in for the server of the Keras weights: one file over HTTP on 127.0.0.1, with Range
requests answered as a real server does (206 and Content-Range), every request's Range header recorded,
and, when asked, the first transfer dropped after a given number of bytes (the connection closed with
the promised Content-Length unmet), as a flaky network does. Loaded by tests/conftest.py for its
fixture ``no_proxy_for_localhost``."""
import http.server
import socket
import threading

import pytest


@pytest.fixture
def no_proxy_for_localhost(monkeypatch):
    """urllib honours proxy variables; a proxy must not intercept the local test server."""
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1,localhost")


class WeightsOrigin:
    def __init__(self, body: bytes, drop_first_after=None, honour_range=True):
        self.body = body
        self.drop_first_after = drop_first_after
        self.honour_range = honour_range
        self.ranges = []  # the Range header of every request, None where there was none
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                origin.ranges.append(self.headers.get("Range"))
                start = 0
                wanted = self.headers.get("Range")
                if wanted and origin.honour_range:
                    start = int(wanted.removeprefix("bytes=").removesuffix("-"))
                    if start >= len(origin.body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(origin.body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(origin.body) - 1}/{len(origin.body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(origin.body) - start))
                self.end_headers()
                end = len(origin.body)
                if origin.drop_first_after is not None and len(origin.ranges) == 1:
                    end = origin.drop_first_after
                self.wfile.write(origin.body[start:end])
                if end < len(origin.body):
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vgg16.h5"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/vgg16.h5"
