"""The audit actor for management commands.

`AuditedCommand` is a BaseCommand whose `execute()` runs inside an actor context
(source "command", the command name and the OS user in the audit's extra info; `--actor
USERNAME` names the platform user responsible). For commands that do not derive from it,
`install_command_actor()` (called at start-up) sets the same context for the whole process
when it runs `manage.py <command>`, so their changes are still attributed to the command.
"""
import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from . import context
from .audit import _EXTRA, actor_context

SERVER_COMMANDS = {"runserver", "shell", "dbshell", "test", "testserver", "celery",
                   "collectstatic", "makemigrations", "makemessages", "compilemessages",
                   "check", "showmigrations", "sqlmigrate"}


def _os_user():
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return None


class AuditedCommand(BaseCommand):
    """Base for the platform's management commands: changes are audited as this command."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("--actor", help="Username of the person running this command "
                                            "(recorded in the audit trail).")
        self._audit_name = subcommand
        return parser

    def execute(self, *args, **options):
        name = getattr(self, "_audit_name", None) or self.__module__.rsplit(".", 1)[-1]
        user = None
        username = options.get("actor")
        if username:
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r} exists (--actor).")
        with actor_context(user=user, source="command", command=name, os_user=_os_user()):
            return super().execute(*args, **options)


def install_command_actor(argv=None):
    argv = argv if argv is not None else sys.argv
    if len(argv) < 2 or not os.path.basename(argv[0]).startswith("manage"):
        return None
    command = argv[1]
    if command.startswith("-") or command in SERVER_COMMANDS:
        return None
    actor = context.Actor(source="command", request_id=context.new_trace_id(),
                          span_id=context.new_span_id(), request_method="COMMAND",
                          request_url=command)
    _EXTRA[id(actor)] = {"command": command, "os_user": _os_user()}
    context.set_actor(actor)
    return actor
