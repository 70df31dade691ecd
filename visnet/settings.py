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
``VISNET_MODEL``           the model a worker serves (default ``vgg16``; a model added with
                           ``python -m visnet models add`` by its name); each model has its own queue
                           (its dataset scans go to ``<queue>-scans`` for VGG16, ``<queue>-scans-model-<name>``
                           for a stored model, which its workers serve after its photo queue)
``VISNET_JOB_TIMEOUT``     seconds a job may run (default 600)
``VISNET_RESULT_TTL``      seconds Redis keeps a finished job (default 86400; its files stay on disk)
``VISNET_FAILURE_TTL``     seconds Redis keeps a failed job (default 86400)
``VISNET_MAX_UPLOAD_MB``   largest request body in MiB (default 20)
``VISNET_MAX_SCAN_UPLOAD_MB``  largest ZIP upload of a dataset scan, in MiB (default 200; only
                           ``POST /api/scans`` and ``POST /scans`` take it)
``VISNET_MAX_IMAGE_PIXELS``  largest image, width × height, read from the header (default 40 000 000)
``VISNET_BIND``            gunicorn's address (default 127.0.0.1:8000)
``VISNET_WEB_WORKERS``     gunicorn worker processes (default 2)
``VISNET_LOG_LEVEL``       worker and web log level (default INFO)
``VISNET_WORKER_MAX_JOBS``  with ``worker.py --supervise``: jobs after which a worker is replaced by a
                           fresh one (default 500; 0: never)
``VISNET_WORKER_MAX_MEMORY_MB``  with ``--supervise``: RSS above which a worker is killed and replaced,
                           its job failed (default 0: no limit)
``VISNET_WORKER_HANG_GRACE``  with ``--supervise``: seconds past a job's time limit after which a worker
                           that could not stop it (stuck in native code) is killed (default 30; under
                           60, when RQ itself would take the job for abandoned)
``VISNET_WORKER_WARM_UP``  1 (default): a worker builds the preset sweeps and runs the default request once on
                           a grey image before it takes jobs, so that the first user's job does not pay for them
                           (about 5 s each on 2 cores); 0: it takes jobs at once and the first job pays (a worker
                           that must start fast)
``VISNET_WORKER_REDIS_TIMEOUT``  seconds a worker waits for Redis to answer one command before it
                           reconnects (default 30); it waits for a job in blocking reads of half that
``VISNET_SWEEP_MEMORY_MB``  working memory one run of the deconvnet's bundled sweep may take, estimated, in
                           MiB (default 896); a job whose seeds need more runs in chunks of them, with the
                           same results (visnet.sweep_chunks); also ``--sweep-memory-mb`` of the CLI
``VISNET_QUEUE_CAP``       queued jobs past which new submissions answer 503 with Retry-After (default 100)
``VISNET_RATE_LIMIT_SUBMIT``  POST/DELETE requests per client per window (default 30; 0: no limit)
``VISNET_RATE_LIMIT_READ``    other requests per client per window: polls, PNGs, archives, pages
                           (default 1200; 0: no limit); /api/health and /static are never limited
``VISNET_RATE_LIMIT_FILES``   result pictures (job PNGs, scan thumbnails and projections) per client per window
                           (default 20000: a scan page of 512 units shows about 9000; 0: no limit)
``VISNET_RATE_LIMIT_WINDOW``  seconds of a rate-limit window (default 60)
``VISNET_TRUSTED_PROXIES``    reverse proxies in front of gunicorn whose X-Forwarded-For is believed
                           (default 0: the header is ignored and the client is the socket's peer)
``VISNET_RETENTION_HOURS``    age after which results, uploads and finished scans are deleted (default 168)
``VISNET_CLEANUP_INTERVAL``   seconds between cleanup runs from the web processes, one run per
                           interval cluster-wide (default 3600; 0: only ``python -m service.cleanup``)
``VISNET_FETCH``           1 (default): with ``VISNET_WEIGHTS=auto``, ``make run`` downloads the ImageNet
                           VGG16 with its classifier top when it is not in the models folder; 0: never
                           (no network request; ``auto`` takes what is there, hed at worst)
``VISNET_WEIGHTS_URL``     a mirror of the ImageNet file with the top (default: Keras' own URL); also
                           how the tests point the download at a local server
``VISNET_WEIGHTS_MD5``     the md5 that file must have (default: the Keras file's); only for a mirror
                           that serves another file, and for the tests' generated files
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .numbers import parse_decimal, parse_whole_number

# The sweep's default memory budget (visnet.sweep_chunks): the default job (W15, seed=both: 825 MiB of whole-map
# seeds, 188 of windows, estimated) runs its maps in one run and its windows in a second, as fast as one run
# (3.91 s both ways, median of 7 interleaved, 2-core AMD EPYC), and one photo's 54 reconstructions peak under
# 2 GB (1866 MiB; 1945 at 1024 MiB, where its chunks were 990 MiB each instead of 770).
SWEEP_MEMORY_MB_DEFAULT = 896

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "vgg16"  # the built-in model: its workers serve the queue named VISNET_QUEUE itself


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
    max_scan_upload_bytes: int
    bind: str
    web_workers: int
    log_level: str
    queue_cap: int = 100
    rate_limit_submit: int = 30
    rate_limit_read: int = 1200
    rate_limit_window: int = 60
    rate_limit_files: int = 20000
    trusted_proxies: int = 0
    retention_hours: float = 168.0
    cleanup_interval: int = 3600
    worker_max_jobs: int = 500
    worker_max_memory_mb: int = 0
    worker_hang_grace: int = 30
    worker_redis_timeout: float = 30.0
    worker_warm_up: bool = True
    fetch: bool = True
    weights_url: Optional[str] = None  # None: the known ImageNet URL (visnet.weights.KNOWN_WEIGHTS)
    weights_md5: Optional[str] = None  # None: the known ImageNet md5
    sweep_memory_mb: int = SWEEP_MEMORY_MB_DEFAULT
    onednn: object = None  # TF_ENABLE_ONEDNN_OPTS as set, reported by the benchmark
    model: str = DEFAULT_MODEL  # the model a worker serves (VISNET_MODEL)

    @property
    def as_dict(self):
        return {key: str(value) for key, value in self.__dict__.items()}


def scan_queue_name(queue_name: str, model: str = DEFAULT_MODEL) -> str:
    """The queue of ``model``'s dataset scans' jobs: ``<queue>-scans`` for VGG16 (as before models existed),
    ``<queue>-scans-model-<name>`` for a stored model (a name no photo queue has, whatever the model is called).
    The model's workers serve it after its photo queue, so a photo uploaded while a scan of thousands of images
    runs waits for one chunk at most, and the scan's chunks do not count against the photo queue's cap."""
    return f"{queue_name}-scans" if model == DEFAULT_MODEL else f"{queue_name}-scans-model-{model}"


def model_queue_name(queue_name: str, model: str) -> str:
    """The queue of ``model``'s photo jobs: ``queue_name`` itself for the built-in VGG16 (as before models
    existed), ``<queue>-model-<name>`` for a stored chain model, served only by workers of that model."""
    return queue_name if model == DEFAULT_MODEL else f"{queue_name}-model-{model}"


def worker_queue_names(queue_name: str, model: str) -> tuple:
    """The queues a worker of ``model`` serves, in order: its photo queue, then its scans'."""
    return model_queue_name(queue_name, model), scan_queue_name(queue_name, model)


def _number(env, name, default, parse, what, acceptable, requirement):
    """``env[name]`` read by ``parse``, or ``default`` when unset or blank; a ValueError names the variable."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not {what}") from None
    if not acceptable(value):
        raise ValueError(f"{name}={raw!r} must be {requirement}")
    return value


def _positive_int(env, name, default):
    return _number(env, name, default, parse_whole_number, "a whole number", lambda value: value >= 1, "1 or more")


def _non_negative_int(env, name, default):
    """0 is allowed: it switches a limit or a timer off."""
    return _number(env, name, default, parse_whole_number, "a whole number", lambda value: value >= 0, "0 or more")


def _positive_float(env, name, default):
    return _number(env, name, default, parse_decimal, "a number", lambda value: 0 < value < float("inf"),
                   "a number greater than 0")


def _switch(env, name, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={env.get(name)!r} must be 1 or 0 (or true/false, yes/no, on/off)")


def _md5(env, name):
    raw = (env.get(name) or "").strip().lower()
    if raw and (len(raw) != 32 or any(char not in "0123456789abcdef" for char in raw)):
        raise ValueError(f"{name}={env.get(name)!r} is not an md5 (32 hexadecimal digits)")
    return raw or None


def _refuse_frozen_weights(env) -> None:
    """TF_ONEDNN_ASSUME_FROZEN_WEIGHTS, which Intel's tuning guides suggest for inference, makes each oneDNN convolution
    keep the first filter it saw. Measured (TensorFlow 2.21): an eager convolution with a second filter of the same
    shape returned the first one's result (the autodiff reference, model conversion), and every convolution of the
    graph kept a copy of its weights (W15 with seed=both: 2057 MiB of peak RSS against 1649)."""
    if _switch(env, "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", False):
        raise ValueError(f"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS={env.get('TF_ONEDNN_ASSUME_FROZEN_WEIGHTS')!r}: with it, "
                         "oneDNN reuses the first filter each convolution saw and results would be wrong; unset it")


def from_environment(environ=None) -> Settings:
    env = os.environ if environ is None else environ
    _refuse_frozen_weights(env)
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
        max_scan_upload_bytes=_positive_int(env, "VISNET_MAX_SCAN_UPLOAD_MB", 200) * 1024 * 1024,
        bind=env.get("VISNET_BIND") or "127.0.0.1:8000",
        web_workers=_positive_int(env, "VISNET_WEB_WORKERS", 2),
        log_level=(env.get("VISNET_LOG_LEVEL") or "INFO").upper(),
        queue_cap=_positive_int(env, "VISNET_QUEUE_CAP", 100),
        rate_limit_submit=_non_negative_int(env, "VISNET_RATE_LIMIT_SUBMIT", 30),
        rate_limit_read=_non_negative_int(env, "VISNET_RATE_LIMIT_READ", 1200),
        rate_limit_window=_positive_int(env, "VISNET_RATE_LIMIT_WINDOW", 60),
        rate_limit_files=_non_negative_int(env, "VISNET_RATE_LIMIT_FILES", 20000),
        trusted_proxies=_non_negative_int(env, "VISNET_TRUSTED_PROXIES", 0),
        retention_hours=_positive_float(env, "VISNET_RETENTION_HOURS", 168.0),
        cleanup_interval=_non_negative_int(env, "VISNET_CLEANUP_INTERVAL", 3600),
        worker_max_jobs=_non_negative_int(env, "VISNET_WORKER_MAX_JOBS", 500),
        worker_max_memory_mb=_non_negative_int(env, "VISNET_WORKER_MAX_MEMORY_MB", 0),
        worker_hang_grace=_non_negative_int(env, "VISNET_WORKER_HANG_GRACE", 30),
        worker_redis_timeout=_positive_float(env, "VISNET_WORKER_REDIS_TIMEOUT", 30.0),
        worker_warm_up=_switch(env, "VISNET_WORKER_WARM_UP", True),
        fetch=_switch(env, "VISNET_FETCH", True),
        weights_url=(env.get("VISNET_WEIGHTS_URL") or "").strip() or None,
        weights_md5=_md5(env, "VISNET_WEIGHTS_MD5"),
        sweep_memory_mb=_positive_int(env, "VISNET_SWEEP_MEMORY_MB", SWEEP_MEMORY_MB_DEFAULT),
        onednn=env.get("TF_ENABLE_ONEDNN_OPTS"),
        model=(env.get("VISNET_MODEL") or "").strip() or DEFAULT_MODEL,
    )
