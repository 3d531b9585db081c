"""Production: every secret from the environment; `manage.py check --deploy` is clean.

Only what differs from base.py: the secret is required, DEBUG is off, and the site is
HTTPS-only behind the TLS proxy (docs/deploy.md).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import env, env_bool, env_int

SECRET_KEY = env("SECRET_KEY", "")  # unset or empty: refused just below
if not SECRET_KEY or SECRET_KEY.startswith("dev-only"):
    raise ImproperlyConfigured("Set SECRET_KEY in the environment (50+ random characters).")
DEBUG = False

# nginx terminates TLS and says so in X-Forwarded-Proto (deploy/nginx/shop-search.conf).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
