"""``make run`` (``python -m service.serve``) with a setting it cannot use: one line that names it, no traceback,
before anything starts."""
import pytest

from service.serve import main


def test_a_setting_that_cannot_be_used_stops_the_service_in_one_line(monkeypatch):
    monkeypatch.setenv("VISNET_QUEUE_CAP", "0")
    with pytest.raises(SystemExit) as stopped:
        main()
    assert str(stopped.value.code) == "python -m service.serve: VISNET_QUEUE_CAP='0' must be 1 or more"
