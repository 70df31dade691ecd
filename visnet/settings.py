"""The one place that reads configuration from the environment.

Everything else in ``visnet`` takes paths and parameters as arguments; the CLI, the worker and the
web app call :func:`from_environment` and pass the values on.
"""
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    weights: str
    device: str

    @property
    def as_dict(self):
        return {key: str(value) for key, value in self.__dict__.items()}


def from_environment(environ=None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        models_dir=Path(env.get("VISNET_MODELS_DIR", PROJECT_ROOT / "models")),
        weights=env.get("VISNET_WEIGHTS", "auto"),
        device=env.get("VISNET_DEVICE", "auto"),
    )
