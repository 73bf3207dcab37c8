"""The API's interactive documentation (Swagger UI at /api/docs/).

The schema names every endpoint and field, so it is served to logged-in users only. A browser
without a session is sent to the admin login and back, instead of a bare "401 Unauthorized";
clients that do not ask for HTML (a script without a token) still get the API's 401."""
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import exceptions


class ApiDocsView(SpectacularSwaggerView):
    def handle_exception(self, exc):
        wants_html = "text/html" in self.request.headers.get("Accept", "")
        if wants_html and isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path(), login_url="admin:login")
        return super().handle_exception(exc)
