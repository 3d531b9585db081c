"""Settings shared by every environment. The only module that reads the environment."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import overload

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE

BASE_DIR = Path(__file__).resolve().parent.parent.parent


@overload
def env(name: str) -> str | None: ...
@overload
def env(name: str, default: str) -> str: ...
@overload
def env(name: str, default: str | None) -> str | None: ...


def env(name: str, default: str | None = None) -> str | None:
    """An unset or empty variable gives ``default``; a string default means a string result."""
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return default if value is None else int(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


SECRET_KEY = env("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
]
THIRD_PARTY_APPS = [
    "corsheaders",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc served from our own static files
    "django_filters",
    "csp",
    "axes",
]
# Dependencies point one way: partners, search -> indexing -> catalog; all may use ml.
LOCAL_APPS = [
    "catalog",
    "indexing",
    "search",
    "partners",
    "shop_search.apps.ShopSearchConfig",  # the last: start-up checks
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Headers and CSP, then the request-body cap before anything reads the body (CSRF
    # reads request.POST): shop_search/security.py.
    "shop_search.security.ContentSecurityPolicyMiddleware",
    "shop_search.security.RequestBodyLimitMiddleware",
    # A control character (NUL...) in the path is a 404, in the query a 400: never a lookup.
    "shop_search.security.ControlCharacterMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # An outage of the database or the model is a 503 with Retry-After, never a 500.
    "shop_search.middleware.ServiceUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "shop_search.urls"
WSGI_APPLICATION = "shop_search.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_search")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            # A cache outage must never fail a request: the cache is an accelerator only.
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
        },
        "KEY_PREFIX": "shop-search",
    }
}
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Uploads: a photo from a phone is a few MB; anything much larger is refused with 413.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 15 * 1024 * 1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024

# --- The model -------------------------------------------------------------------------
# One shared search space: every stored vector and every query vector has this dimension.
SEARCH_EMBEDDING_DIM = 512
SEARCH_MODEL = env("SEARCH_MODEL", "effnet-lite2-minilm")
# Extra folders of model configs (JSON, as in ml/configs/): a new backbone is a config file.
SEARCH_MODEL_CONFIG_DIRS = env_list("SEARCH_MODEL_CONFIG_DIRS")
SEARCH_IMAGE_WEIGHTS = env("SEARCH_IMAGE_WEIGHTS")  # hub id or local path; None = config default
SEARCH_TEXT_WEIGHTS = env("SEARCH_TEXT_WEIGHTS")
SEARCH_FUSION_WEIGHTS = env("SEARCH_FUSION_WEIGHTS")
# One core is left to PostgreSQL and the other process (web or worker): with 2 cores, two
# processes at 2 threads each run slower than at 1 (measured: 158 vs 312 ms per photo).
TORCH_THREADS = env_int("TORCH_THREADS", max(1, len(os.sched_getaffinity(0)) - 1))

# --- Indexing ------------------------------------------------------------------------------
EMBED_IMAGE_BATCH_SIZE = env_int("EMBED_IMAGE_BATCH_SIZE", 16)
EMBED_TEXT_BATCH_SIZE = 64
# A row still marked dirty this long after its last change is re-enqueued by the sweep.
INDEX_SWEEP_GRACE_SECONDS = env_int("INDEX_SWEEP_GRACE_SECONDS", 60)
INDEX_SWEEP_INTERVAL_SECONDS = env_int("INDEX_SWEEP_INTERVAL_SECONDS", 30)
# After a failed send (broker down) saves stop trying for this long: each try can take
# seconds, and the marked rows are swept once the broker is back anyway.
INDEX_BROKER_BACKOFF_SECONDS = env_int("INDEX_BROKER_BACKOFF_SECONDS", 15)

# --- HNSW ----------------------------------------------------------------------------------
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 100)
# Where the image backbone runs (ml.accel): "onnx" (ONNX Runtime, several times eager on
# 2 cores, vectors equal to eager's to ~1e-6: docs/performance.md) or "eager" (PyTorch,
# the reference). Read by indexing/engine.py when it loads a model.
SEARCH_INFERENCE_BACKEND = env("SEARCH_INFERENCE_BACKEND", "onnx")

# --- Search and re-ranking -------------------------------------------------------------------
# The shop's product page, by URL name: catalog's `Product.get_absolute_url` reads it, so the
# domain never imports the app that serves its pages.
CATALOG_PRODUCT_URL_NAME = "search:product"
SEARCH_DEFAULT_K = 20
SEARCH_MAX_K = 100
# The longest query text the page and the API take (characters).
SEARCH_MAX_QUERY_CHARS = 300
# How long a shopper's uploaded photo is kept for the result page (seconds).
QUERY_PHOTO_SECONDS = 3600
# Rows fetched from each HNSW index per wanted product, before grouping by product.
SEARCH_CANDIDATE_FACTOR = 4
# A filter matching at most this many products is answered by an exact scan of them:
# cheaper than walking the graph at that size, and exact.
SEARCH_EXACT_SCAN_MAX_PRODUCTS = 2000
# Score = similarity * w + boosts. Boosts are small: they reorder near-ties, never
# lift an unlike product over a like one.
SEARCH_RANKING_WEIGHTS = {
    "similarity": 1.0,
    "text_match": 0.06,
}
# Each declared attribute's own boost (category, metal, gemstone) is in catalog/searchable.py.
# Queries with words take candidates from HNSW and from the full-text index and fuse them
# (search.ranking.rank_hybrid: reciprocal rank fusion + boosts for what the words name;
# these replace the declared attributes' own small boosts for queries with words).
# Words only: the parsed intent dominates (one point per attribute against at most 2/61 of
# fused rank), so "yellow gold necklace with sapphire" lists every such necklace first.
# Photo and words: the photo's similarity dominates, as before; the fused rank nudges.
SEARCH_HYBRID_WEIGHTS = {
    "text": {
        "similarity": 0.0,
        "dense": 1.0,
        "lexical": 1.0,
        "words": 0.05,
        "category": 1.0,
        "gemstone": 0.8,
        "metal": 0.6,
        "shape": 0.3,
        "price": 0.5,
        "attribute": 0.5,  # any other declared attribute the words name
    },
    # A photo with words keeps the served rule (SEARCH_RANKING_WEIGHTS and the declared boosts)
    # and adds the fused rank of both sides' candidates.
    "photo_text": {"dense": 1.0, "lexical": 1.0},
}
# A product matches a query with words when the full-text index finds one of its words, or
# when its vector is at least this close to the query's; nothing matching gives "No pieces
# match 'laptop'", not the nearest rings, and the facets count the same matching set.
# `manage.py evaluate --calibrate` (docs/search-quality.md): off-catalogue queries reach at most
# 0.157 (demo) / 0.211 (jewelry-dev); labelled queries 0.164-0.254 at their lowest, so the
# dense side alone cannot separate them out of domain: the threshold sits above every
# off-catalogue query and full text carries the rest.
SEARCH_MATCH_MIN_SIMILARITY = 0.25
# Price facet: this many buckets, bounded by the catalogue's price quantiles.
SEARCH_PRICE_BUCKETS = 4

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task killed mid-batch is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900, "socket_connect_timeout": 1}
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY = False
# Each worker process holds a model and runs it on TORCH_THREADS threads. On 2 cores,
# 2 processes x 1 thread embed faster than 1 x 2 (35 vs 28 photos/s, docs/performance.md).
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 2)
# A prefork child loads and warms the model before its first task (indexing/tasks.py).
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120
# A task still running when the broker connection drops finishes its work: a redelivered
# copy finds its rows done and costs one query (indexing/services.py).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULE = {
    "sweep-dirty-index-rows": {
        "task": "indexing.tasks.sweep_index_task",
        "schedule": INDEX_SWEEP_INTERVAL_SECONDS,
        # A sweep that waited behind a backlog longer than one interval is dropped.
        "options": {"expires": INDEX_SWEEP_INTERVAL_SECONDS},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- REST API ----------------------------------------------------------------------------
# The partner API under /api/v1/ (partners/). Every policy lives here, not in the views.

# Per API key, counted in the shared Redis cache. Search runs the model: it is the scarce one.
API_SEARCH_RATE = env("API_SEARCH_RATE", "60/min")
API_CATALOG_RATE = env("API_CATALOG_RATE", "600/min")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["partners.auth.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["partners.auth.HasKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["partners.throttles.APIKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"search": API_SEARCH_RATE, "catalog": API_CATALOG_RATE},
    "DEFAULT_PAGINATION_CLASS": "partners.pagination.KeysetPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
    "DEFAULT_VERSION": "v1",
    "ALLOWED_VERSIONS": ["v1"],
    "EXCEPTION_HANDLER": "partners.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["partners.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "shop-search API",
    "DESCRIPTION": (
        "Multimodal jewelry search for partners: search by photo and/or words, browse the catalog, "
        "find similar products. Send `Authorization: Api-Key <key>`. Errors always have the shape "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Swagger UI and Redoc from our own static files: a self-hosted shop may have no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MetalEnum": "catalog.choices.Metal",
        "GemstoneEnum": "catalog.choices.Gemstone",
        "CurrencyEnum": "catalog.choices.Currency",
    },
}

# Browsers on partner sites may call the API (never the shopper pages or the admin).
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_CREDENTIALS = False  # the key travels in a header, never in a cookie
CORS_EXPOSE_HEADERS = ["Retry-After"]
CORS_PREFLIGHT_MAX_AGE = 86400
# --- end REST API ------------------------------------------------------------------------

# --- Security ----------------------------------------------------------------------------
# Headers, CSP, the admin login rate limit and the request-body cap (shop_search/security.py).

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# The shop pages and the admin load only their own static files; photos are same-origin.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],  # the admin's thumbnails and index badges: style="" only
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# The API docs (drf-spectacular templates): their inline blocks are allowed by hash at
# response time; assets come from static files with drf-spectacular-sidecar, else a CDN.
CSP_DOCS_PATH_PREFIXES = ["/api/v1/docs/"]
CSP_INLINE_STYLE_PATH_PREFIXES = ["/api/v1/docs/redoc/"]  # Redoc styles itself at run time
_DOCS_FROM_CDN = SPECTACULAR_SETTINGS.get("SWAGGER_UI_DIST", "") != "SIDECAR"
CSP_DOCS_EXTRA_SOURCES = {
    "script-src": ["https://cdn.jsdelivr.net"] if _DOCS_FROM_CDN else [],
    "style-src": ["https://cdn.jsdelivr.net", "https://fonts.googleapis.com"] if _DOCS_FROM_CDN else [],
    "font-src": ["https://fonts.gstatic.com"] if _DOCS_FROM_CDN else [],
    "img-src": ["https://cdn.jsdelivr.net"] if _DOCS_FROM_CDN else [],
    "worker-src": ["blob:"],  # Redoc parses the schema in a worker
}

# A body bigger than this is refused (413) before it is parsed; the API bounds its own.
REQUEST_MAX_BYTES = 2 * MAX_UPLOAD_BYTES + 1024 * 1024
REQUEST_MAX_BYTES_ADMIN = 20 * MAX_UPLOAD_BYTES  # a product form with several photos

# Admin login: 5 failures for one username from one address lock that pair out for 15
# minutes (429). Not the address alone (a shop's staff share one), not the username alone
# (anyone could lock the merchant out).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "shop_search.lockout.lockout_response"  # a styled page that says when to try again
AXES_CLIENT_IP_CALLABLE = "search.ratelimit.client_ip"  # the shopper search limit counts by it too
# Behind N reverse proxies that append to X-Forwarded-For, set TRUSTED_PROXY_COUNT=N.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# --- end Security ------------------------------------------------------------------------

# --- Operations (start-up, demo data) ------------------------------------------------------
# `make run` seeds the demo catalogue once, into an empty catalogue; DEMO_CATALOG=0 starts
# an empty shop instead (catalog/management/commands/load_demo_catalog.py --seed).
DEMO_CATALOG = env_bool("DEMO_CATALOG", True)
# --- end Operations ------------------------------------------------------------------------

# --- Shop --------------------------------------------------------------------------------
# The one currency the shop sells in (ISO 4217, one of catalog.choices.Currency). Imported
# prices without a currency are in it; a price written in another currency is refused.
SHOP_CURRENCY = (env("SHOP_CURRENCY", "INR") or "INR").strip().upper()
# --- end Shop ----------------------------------------------------------------------------

# --- Query photos, the query cache, the shopper page's limit (search/photos.py, ratelimit.py)
# The query cache (shoppers' photos, query vectors) has its own Redis, never the broker's:
# in production a separate instance with maxmemory and allkeys-lru (docs/operations.md);
# by default the broker's server, database 1. Photos are bounded by the store itself too.
QUERY_CACHE_URL = env("QUERY_CACHE_URL", REDIS_URL.rsplit("/", 1)[0] + "/1")
CACHES["query"] = {**CACHES["default"], "LOCATION": QUERY_CACHE_URL, "KEY_PREFIX": "shop-search-query"}
# All query photos together stay under this many bytes; the oldest go first (each is a
# JPEG rendition of at most QUERY_PHOTO_MAX_SIDE pixels a side, tens of KB).
QUERY_PHOTO_STORE_BYTES = env_int("QUERY_PHOTO_STORE_BYTES", 64 * 1024 * 1024)
QUERY_PHOTO_MAX_SIDE = 768
# A query photo is decoded whole (PNG, WebP, GIF, HEIC; JPEG at a reduced scale), so it may
# have fewer pixels than a catalog photo: 25 MP takes a 24 MP phone photo and decodes in
# ~0.3 s of CPU; a 50 MP PNG would take 0.7 s before the model (measured, docs/operations.md).
QUERY_MAX_IMAGE_PIXELS = env_int("QUERY_MAX_IMAGE_PIXELS", 25_000_000)
# Anonymous searches (words, photos, filters) per client address; behind proxies see
# TRUSTED_PROXY_COUNT.
SHOPPER_SEARCH_RATE = env("SHOPPER_SEARCH_RATE", "30/min")
# --- end Query photos -------------------------------------------------------------------------
