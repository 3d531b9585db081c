"""The OpenAPI schema is generated from the code, valid, public, and the live API keeps to it."""

from __future__ import annotations

from io import StringIO

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db


def test_schema_validates_against_openapi_3_without_warnings(tmp_path):
    # --validate checks the document against the OpenAPI 3 JSON schema; --fail-on-warn
    # turns every guess drf-spectacular had to make into a failure.
    target = tmp_path / "schema.yaml"
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--api-version",
        "v1",
        "--file",
        str(target),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    text = target.read_text()
    for path in (
        "/api/v1/search/",
        "/api/v1/products/",
        "/api/v1/products/{sku}/",
        "/api/v1/products/{sku}/similar/",
        "/api/v1/categories/",
    ):
        assert f"  {path}:" in text


def test_schema_and_docs_are_public(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": document["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }
    search = document["paths"]["/api/v1/search/"]["post"]
    assert set(search["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"200", "400", "401", "403", "413", "415", "429", "503"} <= set(search["responses"])
    for docs in ("/api/v1/docs/", "/api/v1/docs/redoc/"):
        page = client.get(docs)
        assert page.status_code == 200
        assert b"/api/v1/schema/" in page.content


# --- a bounded property-based run against a live server -------------------------------------
# Schemathesis' pytest loader (`from_fixture`) does not run on pytest 9, so each operation's
# strategy is driven by Hypothesis here directly: same generation, same checks.

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_STRATEGY = 10


def test_live_api_never_answers_5xx_and_keeps_to_its_schema(live_server, transactional_db, catalog, api_key, settings):
    # Rates high enough that generated traffic reaches the views instead of the throttle.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"search": "10000/min", "catalog": "10000/min"},
    }
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    headers = {"Authorization": f"Api-Key {api_key[1]}"}
    for operation in operations:
        for strategy in _strategies(operation, known_sku="RING-1"):

            @given(case=strategy)
            @hypothesis_settings(
                max_examples=EXAMPLES_PER_STRATEGY,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

            check()


def _strategies(operation, known_sku: str) -> list:
    """The schema's own examples, then generated valid and invalid requests; for a product
    path, also valid requests for a product that exists (random SKUs only reach the 404)."""
    strategies = [
        *operation.get_strategies_from_examples(),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if "{sku}" in operation.path:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"sku": known_sku}))
    return strategies
