"""The test settings as a real server runs them: persistent connections with health
checks (as in base.py), so a database restart is survived the way production survives it."""

import dj_database_url

from shop_search.settings.test import *  # noqa: F403
from shop_search.settings.test import DATABASE_URL, env

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
MEDIA_ROOT = env("MEDIA_ROOT")
