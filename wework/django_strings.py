"""Strings of Django itself that its Simplified Chinese catalogue lacks (Django 6.1).

Listed here so that `makemessages` keeps them in the project catalogue (locale/, which
LOCALE_PATHS puts before Django's own), where they are translated. Never imported.
"""
from django.utils.translation import gettext_noop

DJANGO_STRINGS = (
    # django.db.models.fields.BLANK_CHOICE_LABEL: the empty choice of every select and of the
    # admin's action menu.
    gettext_noop("- Select an option -"),
)
