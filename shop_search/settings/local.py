"""`make run` and `manage.py`: DEBUG on, and the embedded servers and media folder under
`.data/` unless DATABASE_URL / REDIS_URL / MEDIA_ROOT say otherwise. `manage.py` and the
launcher start those servers (shop_search/embedded.py), so both talk to the same shop."""

from pathlib import Path

import dj_database_url

from shop_search import embedded

from .base import *
from .base import env, env_bool, env_int

DEBUG = env_bool("DEBUG", True)

DATABASE_URL = env("DATABASE_URL") or embedded.postgres_url()
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
REDIS_URL = env("REDIS_URL") or embedded.redis_url()
CACHES["default"]["LOCATION"] = REDIS_URL
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(embedded.DATA_DIR / "media")))
# `make run` puts a buffering front (shop_search/front.py) before gunicorn: one proxy.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)
