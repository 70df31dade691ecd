"""The web processes' share of expiry (service.cleanup does the work): ``init_app`` starts the
background thread that cleans once per ``CLEANUP_INTERVAL`` across the cluster."""
from app.redis_client import get_redis
from service import cleanup


def cleanup_app(app, max_age_hours: float = None, dry_run: bool = False) -> dict:
    """service.cleanup.run_cleanup with the app's folders, queue and retention; needs an app context."""
    config = app.config
    hours = config["RETENTION_HOURS"] if max_age_hours is None else max_age_hours
    return cleanup.run_cleanup(config["RESULTS_DIR"], config["UPLOAD_DIR"], get_redis(), config["QUEUE_NAME"],
                               hours * 3600, job_timeout=config["JOB_TIMEOUT"], dry_run=dry_run)


def run_if_due(app):
    """service.cleanup.run_if_due with the app's Redis, folders and settings."""
    with app.app_context():
        config = app.config
        return cleanup.run_if_due(get_redis(), config["RESULTS_DIR"], config["UPLOAD_DIR"], config["QUEUE_NAME"],
                                  config["RETENTION_HOURS"], config["CLEANUP_INTERVAL"],
                                  job_timeout=config["JOB_TIMEOUT"])


def start_periodic(app, interval: float, first_check: float = cleanup.FIRST_CHECK_SECONDS):
    return cleanup.PeriodicCleanup(lambda: run_if_due(app), interval).start(first_check)


def init_app(app):
    """Start the background cleanup in this process, unless it is off or the app is under test
    (tests create many apps; they start one themselves)."""
    interval = app.config["CLEANUP_INTERVAL"]
    if interval and not app.testing:
        app.extensions["visnet.cleanup"] = start_periodic(app, interval)
