import functools
import hashlib
import http.server
import io
import re
import socket
import threading
import time

import pytest

from tests.support.weights_origin import closed_port_url
from visnet.fetch import CHUNK_BYTES, FetchError, StderrProgressBar, duration, fetch_weights, partial_path
from visnet.weights import KNOWN_WEIGHTS, file_md5, read_weights_file

NOTOP = KNOWN_WEIGHTS["imagenet-notop"].filename


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")


@pytest.fixture
def served(keras_notop_file):
    """(url, md5, size) of the generated notop file, served over HTTP on an ephemeral local port."""
    handler = functools.partial(QuietHandler, directory=str(keras_notop_file.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{keras_notop_file.name}"
        yield url, file_md5(keras_notop_file), keras_notop_file.stat().st_size
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def leftovers(models_dir):
    return sorted(path.name for path in models_dir.iterdir() if path.name != NOTOP)


def test_fetch_downloads_verifies_and_reports_progress(tmp_path, served, keras_notop_file):
    url, md5, size = served
    models_dir = tmp_path / "models"
    calls = []

    path = fetch_weights("imagenet-notop", models_dir, url=url, md5=md5, progress=lambda *args: calls.append(args))

    assert path == models_dir / NOTOP
    assert path.read_bytes() == keras_notop_file.read_bytes()
    assert leftovers(models_dir) == []
    done = [done for done, _ in calls]
    assert len(calls) > 10 and done == sorted(set(done)) and done[-1] == size
    assert {total for _, total in calls} == {size}
    assert read_weights_file(path).convs.keys() == read_weights_file(keras_notop_file).convs.keys()


def test_a_present_file_with_the_right_md5_is_not_downloaded_again(tmp_path, served):
    url, md5, _ = served
    path = fetch_weights("imagenet-notop", tmp_path, url=url, md5=md5, progress=lambda *args: None)
    modified = path.stat().st_mtime_ns

    again = fetch_weights("imagenet-notop", tmp_path, url=closed_port_url(), md5=md5, progress=lambda *args: None)

    assert again == path and path.stat().st_mtime_ns == modified


def test_a_present_file_with_another_md5_is_replaced(tmp_path, served):
    url, md5, _ = served
    (tmp_path / NOTOP).write_bytes(b"partial")

    path = fetch_weights("imagenet-notop", tmp_path, url=url, md5=md5, progress=lambda *args: None)

    assert file_md5(path) == md5


def test_md5_mismatch_raises_and_leaves_no_file(tmp_path, served):
    url, md5, _ = served
    wrong = "0" * 32

    with pytest.raises(FetchError, match=f"has md5 {md5}; expected {wrong}"):
        fetch_weights("imagenet-notop", tmp_path, url=url, md5=wrong, progress=lambda *args: None)

    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_fails_at_once_saying_where_to_put_the_file(tmp_path):
    started = time.monotonic()

    with pytest.raises(FetchError) as caught:
        fetch_weights("imagenet-notop", tmp_path, url=closed_port_url(), progress=lambda *args: None)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert str(tmp_path / NOTOP) in message and KNOWN_WEIGHTS["imagenet-notop"].url in message
    assert KNOWN_WEIGHTS["imagenet-notop"].md5 in message and "--weights hed" in message
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_fetch_error(tmp_path, served):
    url, _, _ = served

    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_weights("imagenet-notop", tmp_path, url=url + ".missing", progress=lambda *args: None)
    assert list(tmp_path.iterdir()) == []


def test_a_silent_server_times_out(tmp_path):
    with socket.socket() as listener:  # accepts connections into its backlog, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()

        with pytest.raises(FetchError, match="no connection"):
            fetch_weights("imagenet-notop", tmp_path, url=f"http://127.0.0.1:{listener.getsockname()[1]}/x",
                          progress=lambda *args: None, timeout=0.5)

    assert time.monotonic() - started < 5


class ShortBodyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(CHUNK_BYTES * 3))
        self.end_headers()
        self.wfile.write(b"x" * CHUNK_BYTES)

    def log_message(self, *args):
        pass


def test_a_transfer_that_keeps_breaking_off_keeps_the_part_and_not_the_target(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShortBodyHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchError, match="ended after 1,048,576 of 3,145,728 bytes; the 1,048,576 bytes "
                                             "received are kept in .*, and the next fetch resumes from there"):
            fetch_weights("imagenet-notop", tmp_path, url=f"http://127.0.0.1:{server.server_address[1]}/x",
                          progress=lambda *args: None)
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(path.name for path in tmp_path.iterdir()) == [partial_path(tmp_path / NOTOP).name]
    assert partial_path(tmp_path / NOTOP).read_bytes() == b"x" * CHUNK_BYTES


@pytest.mark.parametrize("name", ["hed", "resnet50"])
def test_only_downloadable_weights_can_be_fetched(tmp_path, name):
    with pytest.raises(ValueError, match="expected one of imagenet, imagenet-notop, vgg19, vgg19-notop$"):
        fetch_weights(name, tmp_path)


def test_default_progress_draws_one_updating_line_on_stderr(tmp_path, served, capsys):
    url, md5, _ = served

    fetch_weights("imagenet-notop", tmp_path, url=url, md5=md5)

    err = capsys.readouterr().err
    assert err.startswith("\rimagenet-notop [")
    assert re.search(r" MB 100%  [0-9.]+ MB/s  0 s left\n$", err)
    assert err.count("\n") == 1


def test_progress_bar_line_without_a_known_total():
    bar = StderrProgressBar("imagenet")

    assert bar.line(12_300_000, None) == "imagenet  12.3 MB"
    assert bar.line(25, 100) == "imagenet [########----------------------] 0.0 / 0.0 MB  25%"


def test_progress_bar_says_the_rate_and_the_time_left():
    now = [100.0]
    bar = StderrProgressBar("imagenet", stream=io.StringIO(), clock=lambda: now[0])

    bar(1_000_000, 10_000_000)  # a resumed download's first report: its earlier bytes are not this run's rate
    now[0] = 102.0
    bar(3_000_000, 10_000_000)

    assert bar.line(*bar.latest) == ("imagenet [#########---------------------] 3.0 / 10.0 MB  30%  1.0 MB/s  "
                                     "7 s left")
    assert bar.line(3_000_000, None, 1e6) == "imagenet  3.0 MB  1.0 MB/s"


@pytest.mark.parametrize("seconds, words", [(0, "0 s"), (59.4, "59 s"), (125, "2 min 05 s"), (3720, "1 h 02 min")])
def test_time_left_in_words(seconds, words):
    assert duration(seconds) == words


# --- VGG19: the same download, Keras' VGG19 file --------------------------------------------------

def test_vgg19_is_downloaded_from_its_origin_md5_checked_where_its_worker_finds_it(tmp_path, vgg19_notop_file):
    from tests.support.weights_origin import WeightsOrigin
    from visnet.weights import resolve_weights

    body, models_dir = vgg19_notop_file.read_bytes(), tmp_path / "models"
    with WeightsOrigin(body) as origin:
        path = fetch_weights("vgg19-notop", models_dir, url=origin.url, md5=file_md5(vgg19_notop_file),
                             progress=lambda *args: None)

    assert path == models_dir / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" and path.read_bytes() == body
    assert sorted(item.name for item in models_dir.iterdir()) == [path.name]
    assert resolve_weights("auto", models_dir, model="vgg19") == ("vgg19-notop", path)
    assert len(read_weights_file(path, model="vgg19").convs) == 16


def test_a_corrupt_vgg19_download_is_refused_and_by_default_keras_md5_is_the_check(tmp_path, vgg19_notop_file):
    from tests.support.weights_origin import WeightsOrigin

    good = vgg19_notop_file.read_bytes()
    corrupt = bytearray(good)
    corrupt[len(good) // 2] ^= 0xFF
    good_md5, corrupt_md5 = file_md5(vgg19_notop_file), hashlib.md5(corrupt).hexdigest()
    with WeightsOrigin(bytes(corrupt)) as origin:
        with pytest.raises(FetchError, match=f"has md5 {corrupt_md5}; expected {good_md5}. It was deleted"):
            fetch_weights("vgg19-notop", tmp_path, url=origin.url, md5=good_md5, progress=lambda *args: None)
    assert list(tmp_path.iterdir()) == []
    with WeightsOrigin(good) as origin:  # the generated file is not Keras' own: its md5 is not the known one
        with pytest.raises(FetchError, match=f"has md5 {good_md5}; expected 253f8cb515780f3b799900260a226db6"):
            fetch_weights("vgg19-notop", tmp_path, url=origin.url, progress=lambda *args: None)
    assert list(tmp_path.iterdir()) == []


def test_offline_the_vgg19_fetch_says_where_to_get_the_file_and_where_to_put_it(tmp_path):
    with pytest.raises(FetchError) as caught:
        fetch_weights("vgg19", tmp_path, url=closed_port_url(), progress=lambda *args: None)

    message = str(caught.value)
    assert "no connection" in message and str(tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels.h5") in message
    assert ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
            "vgg19_weights_tf_dim_ordering_tf_kernels.h5") in message
    assert "md5 cbe5617147190e668d6c5d5026f83318" in message and "--weights hed" not in message
    assert list(tmp_path.iterdir()) == []
