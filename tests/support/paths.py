"""Where the tests find the project and leave what a person may want to look at afterwards."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"  # logs, screenshots, result pictures of the test run
EXAMPLES = PROJECT_ROOT / "static" / "examples"
