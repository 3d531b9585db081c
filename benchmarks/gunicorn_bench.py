"""gunicorn settings for the HTTP benchmark: the app's own (`shop_search.gunicorn_conf`),
plus the inference backend named by SEARCH_INFERENCE_BACKEND applied before the warm-up
query, for as long as indexing/engine.py does not pass it to `load_model` itself (then
this is a no-op: the model already reports the backend)."""

import os

from shop_search import gunicorn_conf as _app
from shop_search.gunicorn_conf import *


def post_worker_init(worker):
    backend = os.environ.get("SEARCH_INFERENCE_BACKEND")
    if backend:
        from indexing.engine import active_version, model_for_version
        from ml.accel import use_backend

        version = active_version(create=False)
        if version is not None:
            model = model_for_version(version)
            if getattr(model, "inference_backend", "eager") != backend:
                use_backend(model, backend)
            worker.log.info("worker %s encodes with %s", worker.pid, getattr(model, "inference_backend", "eager"))
    _app.post_worker_init(worker)
