"""The settings of the queue cap, rate limits, trusted proxies and expiry (visnet.settings), and how
create_app applies them."""
import pytest

from app import create_app
from visnet.settings import from_environment


def test_defaults():
    settings = from_environment({})
    assert settings.queue_cap == 100
    assert (settings.rate_limit_submit, settings.rate_limit_read, settings.rate_limit_window) == (30, 1200, 60)
    assert settings.trusted_proxies == 0
    assert settings.retention_hours == 168 and settings.cleanup_interval == 3600


def test_from_the_environment():
    settings = from_environment({
        "VISNET_QUEUE_CAP": "5", "VISNET_RATE_LIMIT_SUBMIT": "0", "VISNET_RATE_LIMIT_READ": "50",
        "VISNET_RATE_LIMIT_WINDOW": "10", "VISNET_TRUSTED_PROXIES": "2", "VISNET_RETENTION_HOURS": "0.5",
        "VISNET_CLEANUP_INTERVAL": "0",
    })
    assert settings.queue_cap == 5 and settings.rate_limit_submit == 0 and settings.rate_limit_read == 50
    assert settings.rate_limit_window == 10 and settings.trusted_proxies == 2
    assert settings.retention_hours == 0.5 and settings.cleanup_interval == 0


@pytest.mark.parametrize("name, value", [
    ("VISNET_QUEUE_CAP", "0"), ("VISNET_RATE_LIMIT_READ", "-1"), ("VISNET_RATE_LIMIT_WINDOW", "0"),
    ("VISNET_TRUSTED_PROXIES", "one"), ("VISNET_RETENTION_HOURS", "0"), ("VISNET_RETENTION_HOURS", "nan"),
    ("VISNET_RETENTION_HOURS", "inf"), ("VISNET_CLEANUP_INTERVAL", "-60"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        from_environment({name: value})


def test_create_app_believes_x_forwarded_for_only_with_trusted_proxies(app_config):
    untrusting = create_app(app_config)
    trusting = create_app({**app_config, "TRUSTED_PROXIES": 1})
    assert type(untrusting.wsgi_app).__name__ == "method"  # Flask's own, no ProxyFix
    assert type(trusting.wsgi_app).__name__ == "ProxyFix" and trusting.wsgi_app.x_for == 1
