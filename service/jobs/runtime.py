"""The engine of the worker a job runs in. ``worker.py`` (service.worker) loads the engine once, with
its settings, before it takes the first job, and hands it over here; the job functions take it from
here rather than loading one themselves from the environment."""
_engine = None


def install(engine):
    """Called once by the worker, after the engine is loaded and warmed up."""
    global _engine
    _engine = engine


def engine():
    if _engine is None:
        raise RuntimeError("no engine is installed: job functions run in worker.py, which loads one first")
    return _engine
