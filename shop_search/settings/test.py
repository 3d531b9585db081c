"""What the test suite needs, nothing more."""

from .base import *  # noqa: F401,F403
from .base import BASE_DIR, env

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}  # noqa: F405
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CELERY_BROKER_URL = REDIS_URL
SEARCH_MODEL = env("SEARCH_MODEL", "tiny-test")
TORCH_THREADS = 1
MEDIA_ROOT = BASE_DIR / ".cache" / "test-media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
INDEX_SWEEP_GRACE_SECONDS = 2
