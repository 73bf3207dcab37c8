"""Safe template rendering for message templates.

Why not Django's template engine (or Jinja, or `str.format`)? Template content is written by
operators and rendered with values from contacts and uploads: an engine that resolves attribute
lookups, filters or format specs (`{0.__class__}`, `{{ obj.delete }}`) lets user content reach
Python objects. The syntax here is deliberately tiny and is parsed, never evaluated:

    Hello {{ name }}, your order {{order_no}} ships today.

A placeholder is `{{`, optional spaces, an identifier (letters, digits, underscore, not starting
with a digit, unicode letters allowed), optional spaces, `}}`. Anything else after `{{` is a
syntax error reported with its position (no dots, filters, tags or expressions); single braces
are plain text. Values are converted with `str()` and inserted as they are: a value containing
`{{ x }}` is never rendered again.

Structured message types (link, file, card, location, ...) keep their content as a dict: every
string leaf of it is rendered the same way.
"""
import re
from dataclasses import dataclass

from django.utils.translation import gettext as _, gettext_lazy

from .errors import MessagingInvalid

NAME_RE = re.compile(r"[^\W\d]\w{0,63}\Z")
MAX_RENDERED_LENGTH = 64 * 1024


class TemplateSyntaxError(MessagingInvalid, ValueError):
    """The template text cannot be parsed."""

    code = "template_syntax"


class RenderedTooLongError(TemplateSyntaxError):
    """The rendered text is over MAX_RENDERED_LENGTH (a template, or a value, far too long)."""

    code = "too_long"

    def __init__(self):
        super().__init__(_("The rendered text is too long."))


class MissingVariablesError(MessagingInvalid, ValueError):
    """Some placeholders have no value."""

    code = "missing_variables"

    def __init__(self, names):
        self.names = sorted(set(names))
        super().__init__(
            _("Missing template variables: %(names)s.") % {"names": ", ".join(self.names)}
        )


@dataclass(frozen=True)
class Placeholder:
    name: str


def parse(text):
    """Split `text` into literal strings and Placeholder items; raise TemplateSyntaxError."""
    if text is None:
        return []
    parts = []
    pos = 0
    n = len(text)
    while pos < n:
        start = text.find("{{", pos)
        if start == -1:
            parts.append(text[pos:])
            break
        end = text.find("}}", start + 2)
        if end == -1:
            raise TemplateSyntaxError(
                _("Unclosed '{{' at position %(pos)d.") % {"pos": start}
            )
        name = text[start + 2 : end].strip()
        if not NAME_RE.match(name):
            raise TemplateSyntaxError(
                _("Invalid variable %(name)r at position %(pos)d: a variable is a name of letters, "
                  "digits and '_' between '{{' and '}}', nothing else (no dots, filters or code).")
                % {"name": text[start : end + 2], "pos": start}
            )
        if start > pos:
            parts.append(text[pos:start])
        parts.append(Placeholder(name))
        pos = end + 2
    return parts


def placeholders(content):
    """The set of placeholder names used in `content` (a string, or a dict/list of them)."""
    names = set()
    for text in _strings(content):
        names.update(p.name for p in parse(text) if isinstance(p, Placeholder))
    return names


def render_text(text, values):
    parts = parse(text)
    missing = [p.name for p in parts if isinstance(p, Placeholder) and p.name not in values]
    if missing:
        raise MissingVariablesError(missing)
    out = "".join(p if isinstance(p, str) else _to_str(values[p.name]) for p in parts)
    if len(out) > MAX_RENDERED_LENGTH:
        raise RenderedTooLongError()
    return out


def render(content, values):
    """Render a string, or every string leaf of a dict/list, with `values` (a mapping)."""
    if isinstance(content, str):
        return render_text(content, values)
    if isinstance(content, dict):
        missing = placeholders(content) - set(values)
        if missing:
            raise MissingVariablesError(missing)
        return {k: render(v, values) for k, v in content.items()}
    if isinstance(content, list):
        return [render(v, values) for v in content]
    return content


class Compiled:
    """A content parsed once, rendered for many receivers (a broadcast renders it 100,000 times:
    `render()` parses every string again, three times with its checks).

    `names` are its placeholders; `render(values)` gives what `render(content, values)` gives,
    and raises the same errors.
    """

    __slots__ = ("content", "names", "_tree")

    def __init__(self, content):
        self.content = content
        self._tree = _compile(content)
        self.names = frozenset(placeholders(content))

    def missing(self, values):
        return {name for name in self.names if name not in values}

    def render(self, values):
        missing = self.missing(values)
        if missing:
            raise MissingVariablesError(missing)
        return _render_tree(self._tree, values)

    def render_complete(self, values):
        """`render` for values the caller has checked with `missing()` (a KeyError otherwise)."""
        return _render_tree(self._tree, values)


def compile_content(content):
    """`Compiled` for a string, or a dict/list of them; raises TemplateSyntaxError."""
    return Compiled(content)


def _compile(content):
    if isinstance(content, str):
        parts = parse(content)
        if all(isinstance(p, str) for p in parts):
            return ("v", content)
        return ("s", tuple(p if isinstance(p, str) else Placeholder(p.name) for p in parts))
    if isinstance(content, dict):
        return ("d", tuple((k, _compile(v)) for k, v in content.items()))
    if isinstance(content, list):
        return ("l", tuple(_compile(v) for v in content))
    return ("v", content)


def _render_tree(node, values):
    kind, body = node
    if kind == "s":
        out = "".join(p if isinstance(p, str) else _to_str(values[p.name]) for p in body)
        if len(out) > MAX_RENDERED_LENGTH:
            raise RenderedTooLongError()
        return out
    if kind == "d":
        return {k: _render_tree(v, values) for k, v in body}
    if kind == "l":
        return [_render_tree(v, values) for v in body]
    return body


def missing_variables(content, values):
    return placeholders(content) - set(values)


def _strings(content):
    if isinstance(content, str):
        yield content
    elif isinstance(content, dict):
        for v in content.values():
            yield from _strings(v)
    elif isinstance(content, list):
        for v in content:
            yield from _strings(v)


def _to_str(value):
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    # Only plain data: no objects whose __str__ could do anything unexpected.
    if isinstance(value, (list, tuple)):
        return ", ".join(_to_str(v) for v in value)
    raise TemplateSyntaxError(_("Variable values must be text or numbers."))


# --- Variable declarations -----------------------------------------------------------------
# message_templates.variables holds a list of declarations, each a mapping with the keys
# name, label, default and required. A plain list of names is accepted too. Placeholders must all be declared.

BUILTIN_VARIABLES = {
    "receiver_name": gettext_lazy("The receiver's own name (their WeCom nickname)"),
    "receiver_remark": gettext_lazy("Your remark on the receiver (their name when there is none)"),
    "receiver_wxid": gettext_lazy("The receiver's WeCom id"),
}


#: The keys of a variable declaration.
DECLARATION_KEYS = frozenset({"name", "label", "default", "required"})


class DeclarationError(MessagingInvalid, ValueError):
    """A template's variable declarations are malformed, or do not cover its placeholders."""

    code = "template_variables"


def normalize_declarations(variables):
    """Return a list of {"name", "label", "default", "required"} dicts; raise DeclarationError."""
    if variables in (None, "", []):
        return []
    if isinstance(variables, dict):
        # a mapping of name to its declaration, or of name to its default value
        items = []
        for key, spec in variables.items():
            spec = dict(spec) if isinstance(spec, dict) else {"default": spec}
            spec["name"] = key
            items.append(spec)
        variables = items
    if not isinstance(variables, list):
        raise DeclarationError(_("Variables must be a list of declarations."))
    out = []
    seen = set()
    for item in variables:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise DeclarationError(_("Each variable needs a name."))
        name = item["name"].strip()
        if not NAME_RE.match(name):
            raise DeclarationError(_("Invalid variable name %(name)r.") % {"name": name})
        if name in seen:
            raise DeclarationError(_("Variable %(name)r is declared twice.") % {"name": name})
        unknown = sorted(str(key) for key in set(item) - DECLARATION_KEYS)
        if unknown:
            raise DeclarationError(
                _("Unknown keys in the declaration of %(name)r: %(keys)s. A declaration has a name, a label, "
                  "a default and whether it is required.") % {"name": name, "keys": ", ".join(unknown)})
        if item.get("label") is not None and not isinstance(item["label"], str):
            raise DeclarationError(_("The label of %(name)r must be text.") % {"name": name})
        if item.get("required") is not None and not isinstance(item["required"], bool):
            raise DeclarationError(_("Whether %(name)r is required must be true or false.") % {"name": name})
        seen.add(name)
        default = item.get("default")
        if default is not None and not isinstance(default, (str, int, float)):
            raise DeclarationError(_("The default of %(name)r must be text.") % {"name": name})
        out.append(
            {
                "name": name,
                "label": str(item.get("label") or name),
                "default": default,
                "required": bool(item.get("required", default is None)),
            }
        )
    return out


def check_declared(content, variables):
    """Raise DeclarationError if content uses a placeholder that is neither declared nor built in."""
    declared = {d["name"] for d in normalize_declarations(variables)} | set(BUILTIN_VARIABLES)
    undeclared = placeholders(content) - declared
    if undeclared:
        raise DeclarationError(
            _("Undeclared variables in the content: %(names)s. Declare them first.")
            % {"names": ", ".join(sorted(undeclared))}
        )


def defaults_of(variables):
    return {
        d["name"]: d["default"]
        for d in normalize_declarations(variables)
        if d["default"] is not None
    }
