"""The page scripts in static/: native ES modules, no build step. Each page template loads one module; every
import names a file in static/ and a name that file exports; every export is imported somewhere; and the
files are served with a JavaScript MIME type (Chromium refuses a module script served otherwise)."""
import re

import pytest

from tests.support.paths import PROJECT_ROOT

STATIC = PROJECT_ROOT / "static"
TEMPLATES = PROJECT_ROOT / "templates"
PAGE_SCRIPTS = {"upload.html": "upload.js", "job.html": "job.js", "scans.html": "scans.js", "scan.html": "scan.js"}
IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([\w-]+\.js)";$', re.MULTILINE)
EXPORT = re.compile(r"^export (?:async )?(?:function|const|let|class) (\w+)", re.MULTILINE)


def modules() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(STATIC.glob("*.js"))}


def imports(source: str) -> list[tuple[str, str]]:
    """(file, name) for every name the module imports."""
    return [(file, name.strip()) for names, file in IMPORT.findall(source) for name in names.split(",")]


@pytest.mark.parametrize("template, script", PAGE_SCRIPTS.items())
def test_each_page_loads_its_one_module(template, script):
    tags = re.findall(r"<script\b[^>]*>", (TEMPLATES / template).read_text())
    assert tags == [f'<script type="module" src="{{{{ url_for(\'static\', filename=\'{script}\') }}}}">']
    assert (STATIC / script).is_file()


def test_every_import_names_an_export_and_every_export_is_imported():
    sources = modules()
    exported = {file: set(EXPORT.findall(source)) for file, source in sources.items()}
    used = set()
    for file, source in sources.items():
        assert "window.visnet" not in source, f"{file}: share through imports, not a global"
        for target, name in imports(source):
            assert target in sources, f"{file} imports the missing static/{target}"
            assert name in exported[target], f"{file} imports {name}, which static/{target} does not export"
            used.add((target, name))
    unused = {(file, name) for file, names in exported.items() for name in names} - used
    assert not unused, f"exported but imported nowhere: {sorted(unused)}"


def test_scripts_are_served_as_javascript(client):
    for file in modules():
        response = client.get(f"/static/{file}")
        assert response.status_code == 200
        assert response.mimetype in ("text/javascript", "application/javascript"), (file, response.mimetype)
