"""The one place that reads configuration from the environment.

Everything else in ``visnet`` takes paths and parameters as arguments; the CLI, the worker and the
web app call :func:`from_environment` and pass the values on.

The service's variables (README.md, "Configuration"):

``REDIS_URL``              any Redis (``redis://host:6379/0``, ``unix:///path/redis.sock``); unset: an
                           embedded Redis server under the instance folder
``RESULTS_DIR``            where finished jobs live, one folder per job (default instance/results)
``UPLOAD_DIR``             validated uploads, named by content hash (default instance/uploads)
``VISNET_INSTANCE_DIR``    the instance folder (default ./instance)
``VISNET_QUEUE``           RQ queue name (default ``visnet``)
``VISNET_JOB_TIMEOUT``     seconds a job may run (default 600)
``VISNET_RESULT_TTL``      seconds Redis keeps a finished job (default 86400; its files stay on disk)
``VISNET_FAILURE_TTL``     seconds Redis keeps a failed job (default 86400)
``VISNET_MAX_UPLOAD_MB``   largest request body in MiB (default 20)
``VISNET_MAX_IMAGE_PIXELS``  largest image, width × height, read from the header (default 40 000 000)
``VISNET_BIND``            gunicorn's address (default 127.0.0.1:8000)
``VISNET_WEB_WORKERS``     gunicorn worker processes (default 2)
``VISNET_LOG_LEVEL``       worker and web log level (default INFO)
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    weights: str
    device: str
    instance_dir: Path
    redis_url: Optional[str]
    results_dir: Path
    upload_dir: Path
    queue_name: str
    job_timeout: int
    result_ttl: int
    failure_ttl: int
    max_upload_bytes: int
    max_image_pixels: int
    bind: str
    web_workers: int
    log_level: str
    onednn: object = None  # TF_ENABLE_ONEDNN_OPTS as set, reported by the benchmark

    @property
    def as_dict(self):
        return {key: str(value) for key, value in self.__dict__.items()}


def _positive_int(env, name, default):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be greater than 0")
    return value


def from_environment(environ=None) -> Settings:
    env = os.environ if environ is None else environ
    instance_dir = Path(env.get("VISNET_INSTANCE_DIR") or PROJECT_ROOT / "instance")
    return Settings(
        models_dir=Path(env.get("VISNET_MODELS_DIR", PROJECT_ROOT / "models")),
        weights=env.get("VISNET_WEIGHTS", "auto"),
        device=env.get("VISNET_DEVICE", "auto"),
        instance_dir=instance_dir,
        redis_url=env.get("REDIS_URL") or None,
        results_dir=Path(env.get("RESULTS_DIR") or instance_dir / "results"),
        upload_dir=Path(env.get("UPLOAD_DIR") or instance_dir / "uploads"),
        queue_name=env.get("VISNET_QUEUE") or "visnet",
        job_timeout=_positive_int(env, "VISNET_JOB_TIMEOUT", 600),
        result_ttl=_positive_int(env, "VISNET_RESULT_TTL", 86400),
        failure_ttl=_positive_int(env, "VISNET_FAILURE_TTL", 86400),
        max_upload_bytes=_positive_int(env, "VISNET_MAX_UPLOAD_MB", 20) * 1024 * 1024,
        max_image_pixels=_positive_int(env, "VISNET_MAX_IMAGE_PIXELS", 40_000_000),
        bind=env.get("VISNET_BIND") or "127.0.0.1:8000",
        web_workers=_positive_int(env, "VISNET_WEB_WORKERS", 2),
        log_level=(env.get("VISNET_LOG_LEVEL") or "INFO").upper(),
        onednn=env.get("TF_ENABLE_ONEDNN_OPTS"),
    )
