"""Unknown API versions answer the API's JSON error shape even with DEBUG on (`make run`)."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
def test_unknown_api_version_is_json_with_debug_on_or_off(client, settings, debug):
    settings.DEBUG = debug
    response = client.get("/api/v2/search/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert set(response.json()["error"]) == {"code", "message", "details"}
