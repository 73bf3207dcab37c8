"""scripts/run passes generated secrets to commands safely (a token may start with '-')."""
import os
import re
import subprocess
import sys
from pathlib import Path

from django.core.management import load_command_class

ROOT = Path(__file__).resolve().parent.parent


def test_run_script_passes_tokens_with_equals_sign():
    # secrets.token_urlsafe() starts with '-' once in 64 runs; "--token VALUE" then makes
    # argparse stop with "expected one argument" and scripts/run stops every process.
    text = (ROOT / "scripts" / "run").read_text()
    assert '--token="$SIMULATOR_TOKEN"' in text
    assert not re.search(r'--token\s+"\$', text)


def test_commands_accept_a_token_starting_with_a_dash():
    for app, name in (("instances", "run_instance_simulator"), ("instances", "register_instance")):
        parser = load_command_class(app, name).create_parser("manage.py", name)
        args = ["--token=-abc_DEF", "--name=sim", "--api-url=http://127.0.0.1:1"]
        assert parser.parse_known_args(args)[0].token == "-abc_DEF"


def test_manage_without_its_secrets_exits_with_a_sentence_not_a_traceback():
    env = {**os.environ, "DJANGO_SECRET_KEY": "", "DJANGO_DEBUG": "0", "FIELD_ENCRYPTION_KEYS": ""}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: DJANGO_SECRET_KEY is not set.")
    assert "Traceback" not in result.stderr
