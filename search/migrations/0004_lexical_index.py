"""The lexical index: a tsvector per product kept by triggers in the product's own transaction,
the catalogue's vocabulary for typo correction, and the merchants' synonyms.

Everything works on PostgreSQL 15 and 16 with or without the contrib extensions: where
`unaccent` is not installed (the embedded pgserver build ships no contrib), `search_unaccent`
falls back to a `translate()` of the accented Latin letters (Vietnamese included); without
`pg_trgm` typo correction ranks its candidates in Python (search/lexical.py).
"""

import unicodedata

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models

# What the trigger reads, in the shop's words: the attribute values as words ("rose_gold" ->
# "rose gold"), the merchant's own text for them, and the category's name.
ATTRIBUTE_WORDS_SQL = """
    coalesce(c.name, '') || ' ' ||
    CASE WHEN p.metal = 'other' THEN '' ELSE replace(p.metal, '_', ' ') END || ' ' || p.metal_text || ' ' ||
    CASE WHEN p.gemstone IN ('none', 'other') THEN '' ELSE replace(p.gemstone, '_', ' ') END || ' ' || p.gemstone_text
"""

_EXTRA_FOLDS = {"đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ı": "i"}


def _accent_folds() -> tuple[str, str]:
    """(accented, plain) for translate(): every Latin letter that folds to one ASCII letter."""
    accented, plain = [], []
    ranges = [(0xC0, 0x24F), (0x1E00, 0x1EFF)]
    for start, end in ranges:
        for code in range(start, end + 1):
            char = chr(code)
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            if len(base) == 1 and base.isascii() and base.isalpha() and base != char:
                accented.append(char)
                plain.append(base)
    for char, base in _EXTRA_FOLDS.items():
        accented.append(char)
        plain.append(base)
    return "".join(accented), "".join(plain)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_unaccent_sql() -> str:
    accented, plain = _accent_folds()
    return f"""
DO $do$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent') THEN
    CREATE EXTENSION IF NOT EXISTS unaccent;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent') THEN
    -- unaccent() is only STABLE (it reads its dictionary); the two-argument form with a
    -- fixed dictionary is safe to wrap as IMMUTABLE, the usual recipe.
    EXECUTE format(
      'CREATE OR REPLACE FUNCTION search_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT '
      'AS $f$ SELECT %1$I.unaccent(%2$L::regdictionary, $1) $f$',
      (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'),
      (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent') || '.unaccent'
    );
  ELSE
    CREATE OR REPLACE FUNCTION search_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $f$ SELECT translate($1, {_literal(accented)}, {_literal(plain)}) $f$;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    EXECUTE 'CREATE INDEX IF NOT EXISTS search_searchword_trgm ON search_searchword USING gin (word gin_trgm_ops)';
  END IF;
END
$do$;
"""


FUNCTIONS_SQL = f"""
CREATE OR REPLACE FUNCTION search_words(text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
  SELECT coalesce(array_agg(DISTINCT w ORDER BY w), '{{}}')
  FROM regexp_split_to_table(lower(search_unaccent(coalesce($1, ''))), '[^a-z0-9]+') AS w
  WHERE length(w) BETWEEN 2 AND 40
$f$;

CREATE OR REPLACE FUNCTION search_refresh_documents(ids bigint[]) RETURNS void LANGUAGE sql AS $f$
  INSERT INTO search_productdocument (product_id, document, words)
  SELECT p.id,
         setweight(to_tsvector('english', search_unaccent(p.title)), 'A')
         || setweight(to_tsvector('english', search_unaccent(a.words)), 'B')
         || setweight(to_tsvector('english', search_unaccent(p.description)), 'C'),
         search_words(p.title || ' ' || a.words || ' ' || p.description)
  FROM catalog_product p
  LEFT JOIN catalog_category c ON c.id = p.category_id
  CROSS JOIN LATERAL (SELECT {ATTRIBUTE_WORDS_SQL} AS words) a
  WHERE p.id = ANY(ids)
  ON CONFLICT (product_id) DO UPDATE SET document = EXCLUDED.document, words = EXCLUDED.words
  WHERE search_productdocument.document IS DISTINCT FROM EXCLUDED.document
     OR search_productdocument.words IS DISTINCT FROM EXCLUDED.words
$f$;

CREATE OR REPLACE FUNCTION search_product_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM search_refresh_documents(ARRAY(SELECT id FROM new_rows));
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION search_product_updated() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM search_refresh_documents(ARRAY(
    SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.title, n.description, n.category_id, n.metal, n.metal_text, n.gemstone, n.gemstone_text)
          IS DISTINCT FROM (o.title, o.description, o.category_id, o.metal, o.metal_text, o.gemstone, o.gemstone_text)
  ));
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION search_product_deleted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  DELETE FROM search_productdocument WHERE product_id IN (SELECT id FROM old_rows);
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION search_category_renamed() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM search_refresh_documents(ARRAY(
    SELECT p.id FROM catalog_product p JOIN new_rows n ON n.id = p.category_id JOIN old_rows o ON o.id = n.id
    WHERE n.name IS DISTINCT FROM o.name
  ));
  RETURN NULL;
END $f$;

-- The vocabulary counts: one statement-level delta per change, in word order (no deadlock
-- between two imports touching the same words).
CREATE OR REPLACE FUNCTION search_words_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO search_searchword (word, products)
  SELECT w, count(*) FROM new_rows, unnest(new_rows.words) AS w GROUP BY w ORDER BY w
  ON CONFLICT (word) DO UPDATE SET products = search_searchword.products + EXCLUDED.products;
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION search_words_updated() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO search_searchword (word, products)
  SELECT w, sum(delta) FROM (
    SELECT w, 1 AS delta FROM new_rows, unnest(new_rows.words) AS w
    UNION ALL
    SELECT w, -1 FROM old_rows, unnest(old_rows.words) AS w
  ) changes GROUP BY w HAVING sum(delta) <> 0 ORDER BY w
  ON CONFLICT (word) DO UPDATE SET products = search_searchword.products + EXCLUDED.products;
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION search_words_deleted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  UPDATE search_searchword s SET products = s.products - d.n
  FROM (SELECT w, count(*) AS n FROM old_rows, unnest(old_rows.words) AS w GROUP BY w ORDER BY w) d
  WHERE s.word = d.w;
  RETURN NULL;
END $f$;

CREATE TRIGGER search_product_insert AFTER INSERT ON catalog_product
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_product_inserted();
CREATE TRIGGER search_product_update AFTER UPDATE ON catalog_product
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_product_updated();
CREATE TRIGGER search_product_delete AFTER DELETE ON catalog_product
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_product_deleted();
CREATE TRIGGER search_category_update AFTER UPDATE ON catalog_category
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_category_renamed();
CREATE TRIGGER search_words_insert AFTER INSERT ON search_productdocument
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_words_inserted();
CREATE TRIGGER search_words_update AFTER UPDATE ON search_productdocument
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_words_updated();
CREATE TRIGGER search_words_delete AFTER DELETE ON search_productdocument
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_words_deleted();

SELECT search_refresh_documents(ARRAY(SELECT id FROM catalog_product));
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS search_product_insert ON catalog_product;
DROP TRIGGER IF EXISTS search_product_update ON catalog_product;
DROP TRIGGER IF EXISTS search_product_delete ON catalog_product;
DROP TRIGGER IF EXISTS search_category_update ON catalog_category;
DROP FUNCTION IF EXISTS search_product_inserted(), search_product_updated(), search_product_deleted(),
  search_category_renamed(), search_words_inserted(), search_words_updated(), search_words_deleted();
DROP FUNCTION IF EXISTS search_refresh_documents(bigint[]);
DROP FUNCTION IF EXISTS search_words(text);
DROP FUNCTION IF EXISTS search_unaccent(text);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_catalog_models"),
        ("search", "0003_move_models_to_indexing"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProductDocument",
            fields=[
                (
                    "product",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="catalog.product",
                    ),
                ),
                ("document", django.contrib.postgres.search.SearchVectorField()),
                (
                    "words",
                    django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), default=list, size=None),
                ),
            ],
            options={
                "indexes": [django.contrib.postgres.indexes.GinIndex(fields=["document"], name="search_document_gin")]
            },
        ),
        migrations.CreateModel(
            name="SearchWord",
            fields=[
                ("word", models.TextField(primary_key=True, serialize=False)),
                ("products", models.IntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="Synonym",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "phrase",
                    models.CharField(
                        help_text="What shoppers type, e.g. 'kada' or 'wedding band'.", max_length=100, unique=True
                    ),
                ),
                (
                    "means",
                    models.CharField(help_text="The shop's own words for it, e.g. 'bangle' or 'ring'.", max_length=200),
                ),
                ("is_active", models.BooleanField(default=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["phrase"],
            },
        ),
        migrations.RunSQL(create_unaccent_sql() + FUNCTIONS_SQL, DROP_SQL),
    ]
