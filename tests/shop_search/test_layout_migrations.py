"""A database made at the earlier layout (embeddings in `search`, API keys in `search_api`)
migrates forward to `indexing` and `partners` with every row kept.

Runs in a database of its own (made and dropped here): migrating backwards and forwards
must never touch the suite's test database.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from rest_framework_api_key.crypto import KeyGenerator

from tests.conftest import ROOT, make_photo

pytestmark = [pytest.mark.slow]

EARLIER_LAYOUT = [("indexing", "zero"), ("partners", "zero")]
POPULATE = """
from catalog.models import Category, Product
from tests.factories import add_product_image_bytes
category = Category.objects.create(name="Ring", slug="ring")
for n in range(3):
    product = Product.objects.create(sku=f"OLD-{n}", title=f"Old ring {n}", category=category, price=10 + n)
    add_product_image_bytes(product, open(PHOTO, "rb").read())
"""


def _server_url(name: str) -> str:
    db = settings.DATABASES["default"]
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{db.get('USER') or 'postgres'}@{host}:{db.get('PORT') or 5432}/{name}"


def _manage(url: str, media, *args: str, stdin: str | None = None) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "shop_search.settings.test",
        "MEDIA_ROOT": str(media),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, input=stdin, text=True, capture_output=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def layout_db():
    name = f"{settings.DATABASES['default']['NAME']}_layout"[:60]
    admin = psycopg.connect(_server_url("postgres"), autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    yield _server_url(name)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _populate_earlier_layout(url: str, cursor: psycopg.Cursor) -> tuple[str, int]:
    """Rows as the earlier release wrote them: a version with its HNSW indexes, vectors, a key."""
    cursor.execute(
        "INSERT INTO search_modelversion (version, model_name, dim, weights, state, created_at) "
        "VALUES ('tiny-test@old', 'tiny-test', 512, '{}', 'active', now()) RETURNING id"
    )
    version_id = cursor.fetchone()[0]
    vector = "[" + ",".join(["0.1"] * 512) + "]"
    cursor.execute(
        "INSERT INTO search_imageembedding (image_id, product_id, model_version_id, features, embedding, updated_at) "
        "SELECT id, product_id, %s, '[1,2,3]', %s, now() FROM catalog_productimage",
        [version_id, vector],
    )
    cursor.execute(
        "INSERT INTO search_productembedding (product_id, model_version_id, text_features, embedding, updated_at) "
        "SELECT id, %s, '[1,2,3]', %s, now() FROM catalog_product",
        [version_id, vector],
    )
    for table in ("search_imageembedding", "search_productembedding"):
        cursor.execute(
            f"CREATE INDEX {table}_hnsw_v{version_id} ON {table} USING hnsw (embedding vector_cosine_ops) "
            f"WHERE model_version_id = {version_id}"
        )
    key, prefix, hashed = KeyGenerator().generate()
    cursor.execute(
        "INSERT INTO search_api_partnerapikey (id, prefix, hashed_key, created, name, revoked, scopes) "
        "VALUES (%s, %s, %s, now(), 'partner', false, ARRAY['search'])",
        [f"{prefix}.{hashed}", prefix, hashed],
    )
    return key, version_id


def test_a_database_of_the_earlier_layout_migrates_forward_with_every_row(layout_db, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_photo(1))
    _manage(layout_db, tmp_path / "media", "migrate", "-v0")
    for app, target in EARLIER_LAYOUT:
        _manage(layout_db, tmp_path / "media", "migrate", app, target, "-v0")
    _manage(layout_db, tmp_path / "media", "shell", "-c", f"PHOTO = {str(photo)!r}\n{POPULATE}")
    with psycopg.connect(layout_db, autocommit=True) as conn, conn.cursor() as cursor:
        key, version_id = _populate_earlier_layout(layout_db, cursor)

    _manage(layout_db, tmp_path / "media", "migrate", "-v0")

    with psycopg.connect(layout_db) as conn, conn.cursor() as cursor:
        counts = {}
        for table in (
            "catalog_product",
            "catalog_productimage",
            "indexing_modelversion",
            "indexing_imageembedding",
            "indexing_productembedding",
            "partners_partnerapikey",
        ):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s ORDER BY 1", ["%hnsw%"])
        indexes = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT hashed_key FROM partners_partnerapikey")
        (hashed,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = ANY(%s)",
            [["search_modelversion", "search_imageembedding", "search_productembedding", "search_api_partnerapikey"]],
        )
        (left_behind,) = cursor.fetchone()
    assert counts == {
        "catalog_product": 3,
        "catalog_productimage": 3,
        "indexing_modelversion": 1,
        "indexing_imageembedding": 3,
        "indexing_productembedding": 3,
        "partners_partnerapikey": 1,
    }
    assert indexes == [f"indexing_imageembedding_hnsw_v{version_id}", f"indexing_productembedding_hnsw_v{version_id}"]
    assert left_behind == 0
    assert KeyGenerator().verify(key, hashed)
    # The models see the moved rows, and the key authenticates through them.
    out = _manage(
        layout_db,
        tmp_path / "media",
        "shell",
        "-c",
        "from partners.models import PartnerAPIKey; from indexing.models import ModelVersion, ProductEmbedding\n"
        f"print(PartnerAPIKey.objects.is_valid({key!r}), ModelVersion.objects.get().state,"
        " ProductEmbedding.objects.count())",
    )
    assert out.split()[-3:] == ["True", "active", "3"]
