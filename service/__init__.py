"""The queue runtime: Redis and RQ, no Flask, no TensorFlow at import. Used by the web app (enqueue,
presence, recovery), by ``worker.py`` (the worker and its supervisor) and by the operators' commands
(``python -m service.serve``, ``python -m service.cleanup``, ``python -m service.embedded_redis``)."""
