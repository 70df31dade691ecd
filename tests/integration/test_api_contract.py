"""The API against its own OpenAPI document, checked by a third-party fuzzer: Schemathesis with every check,
in its four phases (examples, coverage, fuzzing, stateful), against gunicorn started as the other tests start
it, rate limits off. Generation is deterministic and bounded, so the run is the same every time.

The fuzzer creates jobs and cancels and deletes them. Its gunicorn therefore has a queue, a Redis database
and folders of its own (tests/support/redis_server.py): no worker serves them, so nothing it enqueues ever
reaches the session's worker, and the other tests never wait behind it. A finished scan written by hand gives
the scan operations something real to browse (the stateful phase finds its id in GET /api/scans)."""
import subprocess
import sys

import pytest
import redis

from tests.support.paths import ARTIFACTS, PROJECT_ROOT
from tests.support.redis_server import CONTRACT_DB, db_url
from tests.support.scan_api import build_finished_scan
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.contract

# Cases per operation and phase. 25 runs in about 10 s on an idle machine; every phase still sees each
# operation's edge cases, as the coverage phase enumerates them whatever this says.
MAX_EXAMPLES = 25
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.fixture(scope="module")
def contract_server(service_env, redis_instance, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    env = {**service_env, "REDIS_URL": db_url(redis_instance["url"], CONTRACT_DB), "VISNET_QUEUE": "visnet-contract",
           "RESULTS_DIR": str(root / "results"), "UPLOAD_DIR": str(root / "uploads"),
           # Nothing drains its queues, and the fuzzer's 5xx check counts a full queue's 503 (documented, and
           # tested in tests/app/test_queue_cap.py) as a failure: no cap within reach of a run.
           "VISNET_QUEUE_CAP": "1000000"}
    build_finished_scan(root / "results" / "scans")
    server = Gunicorn(env, ARTIFACTS / "gunicorn-contract.log", workers=2)
    try:
        server.wait_ready()
        yield server.base
    finally:
        server.stop()
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def test_the_api_keeps_its_openapi_contract(contract_server):
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{contract_server}/api/openapi.json",
               "--checks", "all", "--phases", PHASES, "--max-examples", str(MAX_EXAMPLES),
               "--generation-deterministic", "--workers", "1", "--no-color"]
    # From the checkout, as a person runs it: schemathesis.toml loads the hooks that make real uploads.
    run = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, f"Schemathesis found failures (all of it in {ARTIFACTS / 'schemathesis.txt'}):\n" \
                                + (run.stdout + run.stderr)[-12000:]
