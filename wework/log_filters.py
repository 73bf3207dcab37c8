"""Logging filters used by settings.LOGGING."""
import logging


class QuietPermissionDenied(logging.Filter):
    """A 403 is an expected answer (someone tried what they may not do), not a failure of the
    platform: Django logs it with the PermissionDenied traceback; keep the one line, drop the
    traceback. Everything else passes unchanged."""

    def filter(self, record):
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True
