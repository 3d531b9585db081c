"""gunicorn settings for `make run` and production.

The master loads the app and the model's weights before it forks (preload_app, when_ready):
a worker that dies is replaced in about a second instead of reading the weights again
(11-17 s, during which requests queued). Each worker then builds its own inference
session and runs one query before it takes traffic (post_worker_init).
"""

import logging
import time

preload_app = True


def _render_home_page() -> int:
    """One request through the app (URL resolver, middleware, compiled templates: all
    lazy), so a new worker's first shopper does not pay for them either."""
    from django.conf import settings
    from django.db import connections
    from django.test import Client

    hosts = [host for host in settings.ALLOWED_HOSTS if host != "*" and not host.startswith(".")]
    try:
        return Client(HTTP_HOST=hosts[0] if hosts else "localhost").get("/", secure=True).status_code
    finally:
        connections.close_all()  # no connection may be shared by the forked workers


def when_ready(server):
    from indexing.engine import preload_for_workers

    started = time.perf_counter()
    try:
        version = preload_for_workers()
        status = _render_home_page()
        server.log.info("master preloaded %s in %.1fs (home page: %s)", version, time.perf_counter() - started, status)
    except Exception:  # workers load it themselves (slower), as before
        logging.getLogger(__name__).exception("preloading the model in the master failed")


def post_worker_init(worker):
    from indexing.engine import prepare_preloaded_models
    from search.query import warm_up

    started = time.perf_counter()
    try:
        prepare_preloaded_models()
        version = warm_up()
        worker.log.info("worker %s warmed up with %s in %.2fs", worker.pid, version, time.perf_counter() - started)
    except Exception:  # the page still answers (503 for search) rather than crash-looping
        logging.getLogger(__name__).exception("warm-up failed")
