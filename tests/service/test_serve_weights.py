"""``make run`` with ``VISNET_WEIGHTS=auto`` (issue 12, point 1): the ImageNet VGG16 with its top is
downloaded before the worker starts, from the URL and with the md5 that the settings name (here a local
server and a generated file), or one line says why not and which weights ``auto`` takes instead."""
import hashlib
import io
import re
import time

import numpy as np
import pytest

from service import presence
from service.serve import DownloadNote, prepare_weights
from tests.support.weights_origin import WeightsOrigin, closed_port_url
from visnet.fetch import StderrProgressBar
from visnet.settings import from_environment
from visnet.weights import KNOWN_WEIGHTS, resolve_weights

TOP = KNOWN_WEIGHTS["imagenet"].filename
HED_WORDS = ("HED edge-detector VGG16 (fine-tuned on BSDS500 for edges; deep features are edge features; "
             "classification unavailable; run `python -m visnet weights fetch imagenet` on a machine with internet "
             "for the ImageNet model)")

pytestmark = pytest.mark.usefixtures("no_proxy_for_localhost")


@pytest.fixture(scope="module")
def body() -> bytes:
    return np.random.default_rng(5).bytes(2_500_000)


def settings_for(models_dir, **variables):
    return from_environment({"VISNET_MODELS_DIR": str(models_dir), **variables})


def test_auto_downloads_the_imagenet_file_with_a_progress_bar(tmp_path, body):
    stream = io.StringIO()
    with WeightsOrigin(body) as origin:
        settings = settings_for(tmp_path, VISNET_WEIGHTS_URL=origin.url,
                                VISNET_WEIGHTS_MD5=hashlib.md5(body).hexdigest().upper())
        line = prepare_weights(settings, progress=StderrProgressBar("imagenet", stream=stream, min_interval=0))

    assert (tmp_path / TOP).read_bytes() == body
    assert line == f"weights: ImageNet VGG16 (Keras), downloaded to {tmp_path / TOP}"
    drawn = stream.getvalue().split("\r")[-1]
    # blanks may follow: they erase what a longer previous line (a rate with more digits) left on the terminal
    assert re.fullmatch(r"imagenet \[#{30}\] 2\.5 / 2\.5 MB 100%  [0-9.]+ MB/s  0 s left *", drawn), drawn


def test_an_unreachable_server_falls_back_to_hed_at_once_in_one_line(tmp_path):
    settings = settings_for(tmp_path, VISNET_WEIGHTS_URL=closed_port_url())
    started = time.monotonic()

    line = prepare_weights(settings, progress=lambda *args: None)

    assert time.monotonic() - started < 5
    assert line.startswith(f"could not download the ImageNet VGG16 from {settings.weights_url} (no connection (")
    assert line.endswith(f"); serving {HED_WORDS} from {resolve_weights('hed')[1]}")
    assert "\n" not in line and list(tmp_path.iterdir()) == []


def test_visnet_fetch_0_asks_no_server(tmp_path, body):
    with WeightsOrigin(body) as origin:
        line = prepare_weights(settings_for(tmp_path, VISNET_FETCH="0", VISNET_WEIGHTS_URL=origin.url))

    assert origin.ranges == [] and list(tmp_path.iterdir()) == []
    assert line.startswith("VISNET_FETCH=0: not downloading the ImageNet VGG16; serving HED edge-detector VGG16")


def test_a_present_imagenet_file_or_other_weights_ask_no_server(tmp_path, body):
    with WeightsOrigin(body) as origin:
        assert prepare_weights(settings_for(tmp_path, VISNET_WEIGHTS="hed", VISNET_WEIGHTS_URL=origin.url)) is None
        (tmp_path / TOP).write_bytes(b"already here")
        line = prepare_weights(settings_for(tmp_path, VISNET_WEIGHTS_URL=origin.url))

    assert origin.ranges == []
    assert line == f"weights: ImageNet VGG16 (Keras), {tmp_path / TOP}"


@pytest.mark.parametrize("variables, message", [
    ({"VISNET_FETCH": "maybe"}, "VISNET_FETCH='maybe' must be 1 or 0"),
    ({"VISNET_WEIGHTS_MD5": "abc"}, "VISNET_WEIGHTS_MD5='abc' is not an md5 (32 hexadecimal digits)"),
])
def test_bad_fetch_settings_name_the_variable(tmp_path, variables, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings_for(tmp_path, **variables)


def test_fetch_settings_default_to_the_known_file():
    settings = from_environment({})
    assert settings.fetch is True and settings.weights_url is None and settings.weights_md5 is None


def test_the_download_figures_reach_the_pages_once_a_second_and_go_when_it_ends(redis_conn):
    now = [10.0]
    bar = StderrProgressBar("imagenet", stream=io.StringIO(), min_interval=0, clock=lambda: now[0])
    note = DownloadNote(redis_conn, bar, clock=lambda: now[0])
    prefix = "downloading the ImageNet VGG16 (Keras) before the worker starts: "

    note(1_000_000, 10_000_000)
    assert presence.preparing(redis_conn) == prefix + "1.0 / 10.0 MB  10%"
    assert 0 < redis_conn.ttl(presence.PREPARING_KEY) <= presence.PREPARING_TTL_SECONDS
    now[0] = 10.5
    note(2_000_000, 10_000_000)
    assert presence.preparing(redis_conn) == prefix + "1.0 / 10.0 MB  10%"  # within the second: not again
    now[0] = 12.0
    note(3_000_000, 10_000_000)
    assert presence.preparing(redis_conn) == prefix + "3.0 / 10.0 MB  30%  1.0 MB/s  7 s left"

    note.finish()
    assert presence.preparing(redis_conn) is None
    assert bar.stream.getvalue().endswith("7 s left\n")


def test_a_download_through_the_note_leaves_no_note(tmp_path, body, redis_conn):
    bar = StderrProgressBar("imagenet", stream=io.StringIO())
    with WeightsOrigin(body) as origin:
        note = DownloadNote(redis_conn, bar)
        line = prepare_weights(settings_for(tmp_path, VISNET_WEIGHTS_URL=origin.url,
                                            VISNET_WEIGHTS_MD5=hashlib.md5(body).hexdigest()), progress=note)
        assert "before the worker starts: 2.5 / 2.5 MB 100%" in presence.preparing(redis_conn)  # the last report
        note.finish()

    assert line.startswith("weights: ImageNet VGG16 (Keras), downloaded to")
    assert presence.preparing(redis_conn) is None
