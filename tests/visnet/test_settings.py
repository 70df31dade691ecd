"""visnet.settings against README's "Configuration" table: every variable the settings read is in the table, and
the default the table gives is the one the settings take (the table said 1024 for VISNET_SWEEP_MEMORY_MB long
after the default became 896)."""
import re

import pytest

from tests.support.paths import PROJECT_ROOT
from visnet.settings import from_environment

# Defaults that are folders, given in the table relative to the checkout.
FOLDERS = {"RESULTS_DIR", "UPLOAD_DIR", "VISNET_INSTANCE_DIR", "VISNET_MODELS_DIR"}


def configuration_table() -> dict:
    """{variable: default cell} of README's "Configuration" table."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration"):readme.index("## The API")]
    return dict(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+?) \|", section, re.M))


def test_every_variable_the_settings_read_is_in_readme():
    source = (PROJECT_ROOT / "visnet" / "settings.py").read_text(encoding="utf-8")
    code = source[source.index('"""', 3) + 3:]  # the module's docstring lists them too; the code is what counts
    read = set(re.findall(r'"((?:VISNET|REDIS|RESULTS|UPLOAD)_[A-Z0-9_]+)"', code))
    assert read and read == set(configuration_table())


def test_each_default_in_readme_is_the_one_the_settings_take():
    defaults = {name: cell.strip("`") for name, cell in configuration_table().items() if re.fullmatch(r"`[^`]+`", cell)}
    assert {"VISNET_SWEEP_MEMORY_MB", "VISNET_JOB_TIMEOUT", "VISNET_BIND", "RESULTS_DIR"} <= set(defaults)
    unset = from_environment({})
    for name, default in defaults.items():
        value = str(PROJECT_ROOT / default) if name in FOLDERS else default
        assert from_environment({name: value}) == unset, f"README gives {name} the default {default!r}"


def test_onednn_frozen_weights_are_refused_with_the_reason():
    for value in ("1", "true", "TRUE", "yes"):
        with pytest.raises(ValueError, match="TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=.*: with it, oneDNN reuses the first filter .*; unset it"):
            from_environment({"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": value})
    for value in ("", "0", "false"):
        assert from_environment({"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": value}) == from_environment({})
