"""gunicorn settings for `make run` and production: each worker loads the model once and
runs one query through it before it takes traffic."""

import logging


def post_worker_init(worker):
    from search.query import warm_up

    try:
        version = warm_up()
        worker.log.info("worker %s warmed up with %s", worker.pid, version)
    except Exception:  # the page still answers (503 for search) rather than crash-looping
        logging.getLogger(__name__).exception("warm-up failed")
