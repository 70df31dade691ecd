"""Chromium (one per test module) and a page per test on the session's gunicorn and worker; on a failed
test, what the page looked like is kept (test-artifacts/failed-<test>.png/.html)."""
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, RECORD_STATUSES
from tests.support.paths import ARTIFACTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, worker, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, base_url=live_server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.add_init_script(RECORD_STATUSES)
    problems = []
    # Chromium also logs every 4xx answer as a console error; those are expected in the error tests.
    page.on("console", lambda message: message.type == "error" and "Failed to load resource" not in message.text
            and problems.append(f"console: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda response: response.status >= 500 and problems.append(
        f"{response.status} {response.url}"))
    page.problems = problems
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
        statuses = page.evaluate("window.__statuses || []")
        (ARTIFACTS / f"failed-{request.node.name}.html").write_text(
            f"<!-- {page.url}\nstatuses: {statuses}\nproblems: {problems} -->\n" + page.content())
    context.close()
    assert problems == []
