"""The API's JSON parser: DRF's, plus two bodies it would let through to a 500 answered 400 like
any other malformed JSON:

- a body nested too deeply for Python's parser (a RecursionError, which DRF does not catch);
- a string (a value or a key, at any depth) holding an unpaired UTF-16 surrogate
  (`"hi \\ud800"`): JSON's escapes allow it, but it is no character, so the row saved with it
  could never be encoded again (every page and list that renders it would fail).

The surrogate check costs nothing on ordinary bodies: raw UTF-8 cannot encode a surrogate, so a
body without an escape `\\uD800`-`\\uDFFF` cannot hold one, and only then is the parsed data
walked (`lone_surrogate_path`). Views reading JSON outside DRF call `check_json_text()`.
"""
import re
from io import BytesIO

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

# The escape of a UTF-16 surrogate (\uD800-\uDFFF), on the raw bytes or the text of a body.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")

SURROGATE_MESSAGE = _("JSON parse error - the string at %(path)s contains an unpaired UTF-16 "
                      "surrogate (\\u%(code)s), which is not a character.")


def lone_surrogate_path(data):
    """(path, code point) of the first string in `data` (dict keys included) holding an
    unpaired surrogate, e.g. ("$.receivers[0].variables", 0xD800); None when there is none.
    Paired surrogates never reach here: json decodes them to the character they encode."""
    stack = [("$", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return path, ord(found.group())
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                if isinstance(key, str):
                    found = _SURROGATE.search(key)
                    if found:
                        return f"{path} (a key)", ord(found.group())
                items.append((f"{path}.{key}", item))
            stack.extend(reversed(items))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}[{index}]", item) for index, item in reversed(list(enumerate(value))))
    return None


def surrogate_message(raw, data, encoding="utf-8"):
    """The sentence refusing `data` (parsed from `raw`, bytes in `encoding` or text), or None
    when it holds no unpaired surrogate. Walks `data` only when `raw` has a surrogate escape (or
    is in an encoding where ASCII escapes are not ASCII bytes, e.g. UTF-16: always walked)."""
    if isinstance(raw, (bytes, bytearray)):
        if _ascii_compatible(encoding) and not SURROGATE_ESCAPE.search(raw):
            return None
    elif not _SURROGATE_ESCAPE_TEXT.search(raw):
        return None
    found = lone_surrogate_path(data)
    if found is None:
        return None
    path, code = found
    return str(SURROGATE_MESSAGE) % {"path": path, "code": f"{code:04x}"}


def _ascii_compatible(encoding):
    try:
        return "\\uD8".encode(encoding) == b"\\uD8"
    except (LookupError, UnicodeError):
        return False


def check_json_text(raw, data, encoding="utf-8"):
    """Raise ParseError (400) when `data`, parsed from `raw`, holds an unpaired surrogate."""
    message = surrogate_message(raw, data, encoding)
    if message:
        raise ParseError(message)


class JSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            data = super().parse(BytesIO(raw), media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply") from exc
        check_json_text(raw, data, get_encoding(parser_context or {}))
        return data
