"""System checks of messaging's configuration (run by `manage.py check` and the web server)."""
from django.conf import settings
from django.core import checks

from . import conf


@checks.register(checks.Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    """`MESSAGING_<KEY>` variables must read as their type; keys of `settings.MESSAGING` (the
    `MESSAGING_SETTINGS` JSON) must exist."""
    errors, warnings = [], []
    for problem in conf.environment_problems():
        if "is not a messaging setting" in problem:
            warnings.append(checks.Warning(problem, id="messaging.W001"))
        else:
            errors.append(checks.Error(problem, id="messaging.E001"))
    overrides = getattr(settings, "MESSAGING", None) or {}
    if not isinstance(overrides, dict):
        errors.append(checks.Error("MESSAGING_SETTINGS must be a JSON object.", id="messaging.E002"))
    else:
        warnings.extend(
            checks.Warning(f"MESSAGING_SETTINGS has the key {key!r}, which is not a messaging setting.",
                           id="messaging.W002")
            for key in sorted(overrides) if key not in conf.DEFAULTS
        )
    return errors + warnings
