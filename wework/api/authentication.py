"""Bearer token authentication for the API (tokens issued by POST /api/v1/auth/login)."""
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.services.sessions import AuthFailed, authenticate_access

UNIFORM_MESSAGE = _("Invalid or expired credentials.")


class TokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer wwa.<session>.<secret>`; every failure answers 401 alike."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(UNIFORM_MESSAGE)
        try:
            token = parts[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed(UNIFORM_MESSAGE) from None
        try:
            user, session = authenticate_access(token)
        except AuthFailed:
            raise exceptions.AuthenticationFailed(UNIFORM_MESSAGE) from None
        # A token is issued only after every factor the user needs: it counts as verified.
        user.is_verified = lambda: True
        return user, session

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "wework.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Access token from POST /api/v1/auth/login (expires after 1 hour; "
            "renew with POST /api/v1/auth/refresh).",
        }
