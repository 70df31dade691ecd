"""The test session: fixtures come from tests/support (one module per kind of thing), so that every
test folder sees the same session-wide Redis, worker, gunicorn and engine, each started at most once.
Tests mirror the code: tests/app, tests/service, tests/visnet; tests/integration and tests/browser run
the whole service."""
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


def pytest_collection_modifyitems(config, items):
    # A test that kills the session's worker runs after everything that needs it.
    items.sort(key=lambda item: item.get_closest_marker("kills_worker") is not None)
