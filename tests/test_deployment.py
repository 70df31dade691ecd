"""The deployment files agree with what the tests run. Docker cannot run here, so these read
compose.yaml, the Dockerfile, gunicorn.conf.py and deploy/redis.conf and check that the commands are
the entry points the tests start (tests/servers.py, tests/workers.py), that every setting they pass
is one visnet.settings reads, and that Redis keeps queued jobs."""
import ast
import json
import os
import re
import runpy
from pathlib import Path

import pytest
import yaml

from tests.servers import GUNICORN_COMMAND, Gunicorn
from tests.workers import SUPERVISED_WORKER_COMMAND, WORKER_COMMAND
from visnet.settings import from_environment

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def dockerfile_instructions():
    """[(INSTRUCTION, argument)] of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def test_web_and_worker_run_the_entry_points_the_tests_use(compose):
    services = compose["services"]
    assert services["web"]["command"] == ["python", *GUNICORN_COMMAND]
    assert services["worker"]["command"] == ["python", *SUPERVISED_WORKER_COMMAND]
    assert SUPERVISED_WORKER_COMMAND[:len(WORKER_COMMAND)] == WORKER_COMMAND  # the same script, supervised
    for path in (GUNICORN_COMMAND[-1], WORKER_COMMAND[0]):
        assert (ROOT / path).is_file()


def test_the_image_defaults_to_the_web_command_and_holds_the_project(compose):
    instructions = dockerfile_instructions()
    cmd = [argument for name, argument in instructions if name == "CMD"]
    assert [json.loads(argument) for argument in cmd] == [compose["services"]["web"]["command"]]
    assert ("COPY", ". .") in instructions  # worker.py, gunicorn.conf.py, wsgi.py, app/, visnet/ in WORKDIR
    assert compose["services"]["web"]["image"] == compose["services"]["worker"]["image"]  # one image
    assert compose["services"]["web"]["build"] == compose["services"]["worker"]["build"] == "."


def test_the_gpu_variant_installs_the_same_tensorflow_with_cuda():
    instructions = dockerfile_instructions()
    assert ("ARG", 'TENSORFLOW_EXTRA=""') in instructions
    run = " ".join(argument for name, argument in instructions if name == "RUN")
    assert "grep '^tensorflow==' requirements.txt" in run and "[$TENSORFLOW_EXTRA]==" in run
    assert re.search(r"^tensorflow==\S+$", (ROOT / "requirements.txt").read_text(), re.M)


def test_gunicorn_serves_wsgi_app_with_timeouts_and_recycling(monkeypatch):
    monkeypatch.setenv("VISNET_WEB_WORKERS", "3")
    config = runpy.run_path(str(ROOT / GUNICORN_COMMAND[-1]))
    assert config["wsgi_app"] == "wsgi:app" and config["workers"] == 3
    assert config["timeout"] > 0 and 0 < config["graceful_timeout"] < 10  # inside docker stop's 10 s
    assert config["max_requests"] > 0 and 0 < config["max_requests_jitter"] < config["max_requests"]
    module = ast.parse((ROOT / "wsgi.py").read_text())
    assert any(isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["app"]
               for node in module.body)



def test_gunicorn_opens_no_control_socket_that_other_instances_share(tmp_path):
    """gunicorn's default control socket is one path per user and host ($XDG_RUNTIME_DIR/gunicorn.ctl or
    ~/.gunicorn/gunicorn.ctl): one instance's shutdown deleted another's. Two instances run as in
    production, with both folders where gunicorn would put it; neither may create anything there."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "VISNET_CLEANUP_INTERVAL": "0",
           "REDIS_URL": "redis://127.0.0.1:9/0",  # nothing listens: /api/health answers 503, enough here
           "VISNET_INSTANCE_DIR": str(tmp_path / "instance"), "RESULTS_DIR": str(tmp_path / "results"),
           "UPLOAD_DIR": str(tmp_path / "uploads")}
    servers = [Gunicorn(env, tmp_path / f"gunicorn-{n}.log", workers=1) for n in (1, 2)]
    try:
        for server in servers:
            server.wait_ready()
        assert list(runtime.iterdir()) == [] and list(home.iterdir()) == []
    finally:
        for server in servers:
            server.stop()
    assert runpy.run_path(str(ROOT / GUNICORN_COMMAND[-1]))["control_socket_disable"] is True


def service_environment(compose, service):
    return {key: str(value) for key, value in compose["services"][service]["environment"].items()}


@pytest.mark.parametrize("service", ["web", "worker"])
def test_every_setting_passed_is_one_the_settings_read(compose, service):
    environment = service_environment(compose, service)
    source = (ROOT / "visnet" / "settings.py").read_text()
    for name in environment:
        assert f'"{name}"' in source, f"{service} sets {name}, which visnet/settings.py never reads"
    settings = from_environment(environment)  # and the values parse
    assert settings.redis_url == "redis://redis:6379/0"
    assert str(settings.results_dir).startswith("/data/") and str(settings.upload_dir).startswith("/data/")


def test_web_and_workers_share_redis_and_the_files(compose):
    services = compose["services"]
    web, worker = service_environment(compose, "web"), service_environment(compose, "worker")
    for key in ("REDIS_URL", "RESULTS_DIR", "UPLOAD_DIR", "VISNET_QUEUE", "VISNET_JOB_TIMEOUT"):
        assert web.get(key) == worker.get(key), key
    assert services["web"]["volumes"] == services["worker"]["volumes"] == ["visnet-data:/data"]
    assert "redis" in services and web["REDIS_URL"].startswith("redis://redis:")
    assert services["web"]["ports"] == [f"{web['VISNET_BIND'].rsplit(':', 1)[1]}:8000"]


def test_a_stopping_worker_has_time_to_finish_its_job(compose):
    worker = compose["services"]["worker"]
    amount, unit = re.fullmatch(r"(\d+)([sm])", worker["stop_grace_period"]).groups()
    grace_seconds = int(amount) * (60 if unit == "m" else 1)
    assert grace_seconds > from_environment(service_environment(compose, "worker")).job_timeout


def redis_directives(path):
    directives = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            directives.setdefault(name, []).append(value)
    return directives


def test_redis_runs_the_shipped_config_with_persistence_and_no_eviction(compose):
    redis_service = compose["services"]["redis"]
    mounts = dict(volume.split(":")[:2] for volume in redis_service["volumes"])
    config_path = redis_service["command"][1]
    assert mounts["./deploy/redis.conf"] == config_path and redis_service["command"][0] == "redis-server"
    assert mounts["redis-data"] == "/data"  # the official image's working folder, where the AOF goes
    directives = redis_directives(ROOT / "deploy" / "redis.conf")
    assert directives["appendonly"] == ["yes"] and directives["appendfsync"] == ["everysec"]
    assert directives["maxmemory-policy"] == ["noeviction"]
    assert "dir" not in directives  # the working folder; a fixed one would break the tests' --dir
