"""The deployment files agree with what the tests run. Docker cannot run here, so these read
compose.yaml, the Dockerfile, gunicorn.conf.py, deploy/redis.conf and deploy/nginx.conf and check that
the commands are the entry points the tests start (tests/support/servers.py, tests/support/workers.py), that every
setting they pass is one visnet.settings reads, that Redis keeps queued jobs, and that nginx (the only
published port) parses (`nginx -t`) with limits that match the app's."""
import ast
import json
import os
import re
import runpy
from pathlib import Path

import pytest
import yaml

from tests.support import proxy
from tests.support.paths import PROJECT_ROOT as ROOT
from tests.support.servers import GUNICORN_COMMAND, Gunicorn
from tests.support.workers import SUPERVISED_WORKER_COMMAND, WORKER_COMMAND
from visnet.settings import from_environment


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


def test_only_nginx_is_published_and_it_proxies_to_gunicorn(compose):
    services = compose["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"proxy": ["8000:80"]}  # gunicorn is never exposed directly
    nginx = services["proxy"]
    assert nginx["image"].startswith("nginx:")  # the official image
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert "web" in nginx["depends_on"]
    settings = proxy.directives()
    assert settings["listen"] == ["80"]
    web_port = service_environment(compose, "web")["VISNET_BIND"].rsplit(":", 1)[1]
    assert settings["server"] == [f"web:{web_port}"] and settings["proxy_pass"] == ["http://visnet_web"]


def test_nginx_limits_match_the_apps(compose, monkeypatch):
    settings = from_environment(service_environment(compose, "web"))
    nginx = proxy.directives()
    # The largest body a route of the app accepts (a scan archive, or a photo form) passes nginx.
    assert proxy.size_bytes(nginx["client_max_body_size"][0]) == max(settings.max_upload_bytes,
                                                                     settings.max_scan_upload_bytes)
    # One proxy: X-Forwarded-For is nginx's view of the client, replaced rather than appended to, and
    # the app believes exactly one hop of it (app/ratelimit.py).
    assert settings.trusted_proxies == 1
    assert "X-Forwarded-For $remote_addr" in nginx["proxy_set_header"]
    assert "X-Forwarded-Proto $scheme" in nginx["proxy_set_header"]
    # Slow clients are nginx's: bounded header, body and send timeouts, whole bodies buffered first.
    assert 0 < proxy.seconds(nginx["client_header_timeout"][0]) <= 15
    assert 0 < proxy.seconds(nginx["client_body_timeout"][0]) <= 60
    assert 0 < proxy.seconds(nginx["send_timeout"][0]) <= 60
    assert nginx["proxy_request_buffering"] == ["on"] and nginx["proxy_buffering"] == ["on"]
    zone = re.fullmatch(r"\$binary_remote_addr zone=(\w+):\d+m", nginx["limit_conn_zone"][0]).group(1)
    name, count = nginx["limit_conn"][0].split()
    assert name == zone and 6 <= int(count) <= 64  # a browser's few connections, not a flood
    # nginx's own refusals are JSON in the app's error shape and name the limits above.
    refusals = {int(status): json.loads(body)["error"]
                for status, body in re.findall(r"return (\d+) '(.*)\\n';", proxy.NGINX_CONF.read_text())}
    assert set(refusals) == {413, 429, 503}
    body_mib = proxy.size_bytes(nginx["client_max_body_size"][0]) // 2 ** 20
    assert refusals[413]["code"] == "too_large" and f"limit of {body_mib} MiB" in refusals[413]["message"]
    assert refusals[429]["code"] == "rate_limited" and f"at most {count})" in refusals[429]["message"]
    assert refusals[503]["code"] == "unavailable"
    # nginx waits longer for an answer than gunicorn lets a stuck process live.
    monkeypatch.setenv("VISNET_WEB_WORKERS", "2")
    gunicorn = runpy.run_path(str(ROOT / GUNICORN_COMMAND[-1]))
    assert proxy.seconds(nginx["proxy_read_timeout"][0]) > gunicorn["timeout"]


def test_the_nginx_config_parses(tmp_path):
    binary = proxy.nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)")
    checked = proxy.check_config(proxy.write_config(tmp_path, 8000, 8080))
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr
