"""The test session: fixtures come from tests/support (one module per kind of thing), so that every
test folder sees the same session-wide Redis, worker, gunicorn and engine, each started at most once.
Tests mirror the code: tests/app, tests/service, tests/visnet; tests/integration and tests/browser run
the whole service."""
import pytest

pytest_plugins = [
    "tests.support.redis_server",  # the embedded Redis, its databases
    "tests.support.web",  # the Flask app in-process, the OpenAPI document
    "tests.support.images",  # sample uploads, good and bad
    "tests.support.disks",  # a full disk
    "tests.support.service",  # the session's worker and gunicorn
    "tests.support.engine",  # the session's TensorFlow engine and real photos
    "tests.support.scans",  # the scan tests' image set and workers
    "tests.support.scan_api",  # scan uploads and a finished scan for the API tests, without a worker
    "tests.support.weights_origin",  # a local server of weights files, and no proxy for it
    "tests.support.vgg19",  # generated VGG19 weights files of Keras' layout
]


def pytest_addoption(parser):
    parser.addoption("--update-screenshot", action="store_true",
                     help="also write the README's pictures to docs/: the browser tests' screenshots (the sheet, the layer "
                          "explorer), the figure of "
                          "single-activation patches (tests/visnet/test_readme_figures.py) and the trained chain model's "
                          "(tests/visnet/chain/test_trained_example.py)")


# `make test` runs two sessions side by side (pytest-xdist): the core's tests (tests/visnet, its engine in the test
# process) in one, the service's (Redis, the worker, gunicorn, Chromium) in the other. Each group runs whole in one
# session, in the collection order, so a session runs its tests in the same order on every run. (pytest-xdist's own
# --dist loadgroup marks its groups by renaming node ids, which pytest 9 no longer lets it do.)
CORE_TESTS = "tests/visnet/"


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: a run without the plugin (-p no:xdist) ignores it
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SessionGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return "core" if nodeid.startswith(CORE_TESTS) else "service"

    return SessionGroups(config, log)


def pytest_collection_modifyitems(config, items):
    # A test that kills the session's worker runs after everything that needs it.
    items.sort(key=lambda item: item.get_closest_marker("kills_worker") is not None)
