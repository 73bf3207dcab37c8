"""Browser sessions recorded in `user_sessions`: a revoked or expired row logs the browser out."""
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser

from accounts.services import sessions as session_services


class SessionRevocationMiddleware:
    """Place after AuthenticationMiddleware and OTPMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and hasattr(request, "session")
            and not session_services.browser_session_valid(request)
        ):
            logout(request)
            request.user = AnonymousUser()
        return self.get_response(request)
