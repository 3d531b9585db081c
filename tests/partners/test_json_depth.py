"""A JSON body nested deeper than any request of the API is a 400 that says so, never a
500 from the parser's recursion."""

from __future__ import annotations

import pytest

from partners.parsers import MAX_JSON_DEPTH, json_depth
from tests.partners.conftest import SEARCH_URL, assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_past_the_parsers_recursion_limit_returns_400_with_the_reason(api_client, depth):
    body = '{"text": ' + "[" * depth + "]" * depth + "}"
    error = assert_error(api_client.post(SEARCH_URL, body, content_type="application/json"), 400, "json_too_deep")
    assert str(MAX_JSON_DEPTH) in error["message"]
    assert error["details"] == {"max_depth": MAX_JSON_DEPTH}


def test_json_nested_deeper_than_the_api_reads_returns_400_before_the_view(api_client):
    body = '{"text": "ring", "filters": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}"
    assert_error(api_client.post(SEARCH_URL, body, content_type="application/json"), 400, "json_too_deep")


def test_json_within_the_depth_reaches_the_view():
    assert json_depth({"text": "ring", "k": 5}) == 1
    assert json_depth({"a": [{"b": [1]}]}) == 4
    assert json_depth("ring") == 0


def test_a_body_at_the_depth_limit_is_not_refused_for_its_depth(api_client):
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    response = api_client.post(SEARCH_URL, '{"text": ' + nested + "}", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"  # "text" is not a string: the view said so
