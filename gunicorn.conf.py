"""gunicorn settings, from visnet.settings (VISNET_BIND, VISNET_WEB_WORKERS, VISNET_LOG_LEVEL)."""
from visnet.settings import from_environment

_settings = from_environment()

wsgi_app = "wsgi:app"
bind = _settings.bind
workers = _settings.web_workers
# Threads let one process serve the page, its polling and the PNGs while a slow client uploads.
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 10
loglevel = _settings.log_level.lower()
accesslog = "-"
errorlog = "-"
