from instances.tests.conftest import admin_user, platform_url, registered, simulator  # noqa: F401
