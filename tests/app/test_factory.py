"""The application factory and the settings it reads (visnet.settings, the one place that reads the
environment)."""
from pathlib import Path

import pytest

from app import create_app
from visnet.settings import PROJECT_ROOT, from_environment


def test_config_defaults_come_from_settings_and_test_config_overrides(app_config):
    app = create_app(app_config)
    assert app.testing
    assert app.config["REDIS_URL"] == app_config["REDIS_URL"]
    assert Path(app.config["RESULTS_DIR"]).is_dir() and Path(app.config["UPLOAD_DIR"]).is_dir()
    assert app.config["JOB_TIMEOUT"] == 600 and app.config["RESULT_TTL"] == 86400


def test_settings_defaults():
    settings = from_environment({})
    assert settings.redis_url is None
    assert settings.instance_dir == PROJECT_ROOT / "instance"
    assert settings.results_dir == PROJECT_ROOT / "instance" / "results"
    assert settings.upload_dir == PROJECT_ROOT / "instance" / "uploads"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.bind == "127.0.0.1:8000"
    assert settings.weights == "auto" and settings.device == "auto"


def test_settings_from_environment(tmp_path):
    settings = from_environment({
        "REDIS_URL": "redis://example:6380/2", "RESULTS_DIR": str(tmp_path / "r"), "VISNET_INSTANCE_DIR": str(tmp_path),
        "VISNET_MAX_UPLOAD_MB": "5", "VISNET_JOB_TIMEOUT": "30", "VISNET_QUEUE": "q", "VISNET_LOG_LEVEL": "debug",
    })
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.results_dir == tmp_path / "r" and settings.upload_dir == tmp_path / "uploads"
    assert settings.max_upload_bytes == 5 * 1024 * 1024 and settings.job_timeout == 30
    assert settings.queue_name == "q" and settings.log_level == "DEBUG"


@pytest.mark.parametrize("value", ["ten", "0", "-5"])
def test_bad_numbers_in_the_environment_name_the_variable(value):
    with pytest.raises(ValueError, match="VISNET_JOB_TIMEOUT"):
        from_environment({"VISNET_JOB_TIMEOUT": value})


def test_without_redis_url_the_app_starts_the_embedded_server(app_config, tmp_path, monkeypatch):
    from service import embedded_redis

    monkeypatch.setenv("VISNET_INSTANCE_DIR", str(tmp_path / "instance"))
    app = create_app({**app_config, "REDIS_URL": None})
    try:
        assert app.instance_path == str(tmp_path / "instance")
        assert app.config["REDIS_URL"] == embedded_redis.url_for(tmp_path / "instance")
        assert embedded_redis.answers(app.config["REDIS_URL"])
        assert app.test_client().get("/api/health").get_json()["redis"]["reachable"] is True
    finally:
        embedded_redis.stop_server(app.instance_path)


JOB = "a" * 32


@pytest.mark.parametrize("path", [
    f"/api/jobs/{JOB}/files//x", f"/api/jobs/{JOB}/files//block1_pool_ch0.png", f"/api//jobs/{JOB}",
    f"/api/jobs//{JOB}", f"/api/jobs/{JOB}/", "/api/health/", f"/api/scans/{JOB}//layers", "/api//openapi.json",
])
def test_odd_slashes_under_api_are_json_404s_not_redirects(client, path):
    # Werkzeug answered "//" with a 308 to http://<Host header>/… (the slashes merged).
    response = client.get(path, headers={"Host": "attacker.example"})
    assert response.status_code == 404 and response.is_json, (path, response.status_code, response.headers)
    assert response.get_json()["error"]["code"] == "not_found"
    assert "Location" not in response.headers and "attacker.example" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", [f"/jobs//{JOB}", f"/jobs/{JOB}/", "/scans//", "/static//app.js", "/static/"])
def test_odd_slashes_on_pages_are_404_pages_not_redirects(client, path):
    response = client.get(path, headers={"Host": "attacker.example"})
    assert response.status_code == 404 and response.mimetype == "text/html", (path, response.status_code)
    assert "Location" not in response.headers and "attacker.example" not in response.get_data(as_text=True)

