"""What the test suite needs, nothing more."""

from pathlib import Path

from .base import *
from .base import BASE_DIR, env

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES["default"]["LOCATION"] = REDIS_URL
# The query cache on its own database, as in production (QUERY_CACHE_URL=...:6379/4 to move it).
QUERY_CACHE_URL = env("QUERY_CACHE_URL", REDIS_URL.rsplit("/", 1)[0] + "/14")
CACHES["query"]["LOCATION"] = QUERY_CACHE_URL
CELERY_BROKER_URL = REDIS_URL
SEARCH_MODEL = env("SEARCH_MODEL", "tiny-test")
TORCH_THREADS = 1
# A worker process started by a test gets the test's own media folder (tests/conftest.py).
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / ".cache" / "test-media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
INDEX_SWEEP_GRACE_SECONDS = 2
# Test-only hook: seconds the indexer sleeps per photo batch, so a test can kill a worker
# in the middle of one (tests/search/test_worker.py). Never set outside the test settings.
INDEX_TEST_BATCH_DELAY_SECONDS = float(env("INDEX_TEST_BATCH_DELAY_SECONDS", "0"))
SEARCH_INFERENCE_BACKEND = "eager"  # fast to load; tests/ml/test_accel.py covers the ONNX path
# The suite sends hundreds of searches from one address (the upload corpus): the shopper
# limit's own tests set theirs (tests/search/test_shopper_limits.py).
SHOPPER_SEARCH_RATE = "100000/min"
