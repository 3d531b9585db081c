"""API key authentication (`Authorization: Api-Key <key>`) and scope permissions.

No key: 401 with WWW-Authenticate. A wrong, revoked or expired key: 401. A good key
without the scope the endpoint needs: 403.
"""

from __future__ import annotations

import logging
from typing import cast

from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework_api_key.permissions import KeyParser

from .errors import APIError
from .models import PartnerAPIKey

logger = logging.getLogger(__name__)

KEYWORD = "Api-Key"
HOW_TO_AUTHENTICATE = f"Send your API key in the Authorization header: 'Authorization: {KEYWORD} <key>'."


class APIKeyAuthentication(BaseAuthentication):
    """The key is the identity: `request.auth` is the PartnerAPIKey, there is no user."""

    key_parser = KeyParser()

    def authenticate(self, request) -> tuple[AnonymousUser, PartnerAPIKey] | None:
        key = self.key_parser.get(request)
        if not key:
            return None
        try:
            # rest_framework_api_key types its manager's results as AbstractAPIKey; the rows are ours.
            api_key = cast(PartnerAPIKey, PartnerAPIKey.objects.get_from_key(key.strip()))
        except PartnerAPIKey.DoesNotExist:
            api_key = None
        if api_key is None or api_key.has_expired:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return f'{KEYWORD} realm="api"'


class HasKeyScope(BasePermission):
    """The key must carry the view's `required_scope`; a view that names none is closed."""

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, PartnerAPIKey):
            raise exceptions.NotAuthenticated(HOW_TO_AUTHENTICATE)
        scope = getattr(view, "required_scope", None)
        if scope is None:
            raise APIError(403, "missing_scope", "This endpoint is not open to API keys.")
        if not api_key.allows(scope):
            raise APIError(
                403,
                "missing_scope",
                f"This API key may not use this endpoint: it needs the '{scope}' scope.",
                {"required_scope": scope, "key_scopes": list(api_key.scopes)},
            )
        return True


class RecordsKeyUse:
    """Stamps the key's last use after a successful response (a failed request writes nothing)."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code < 400 and isinstance(request.auth, PartnerAPIKey):
            try:
                request.auth.record_use()
            except DatabaseError:  # bookkeeping: never fail an answered request over it
                logger.warning("could not record the use of API key %s", request.auth.prefix, exc_info=True)
        return response
