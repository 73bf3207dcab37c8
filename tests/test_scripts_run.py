"""scripts/run passes generated secrets to commands safely (a token may start with '-')."""
import re
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
