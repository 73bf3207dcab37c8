"""Template syntax and rendering: placeholders only, never code."""
import pytest

from messaging import rendering as r
from messaging.errors import MessagingInvalid


def test_placeholders_rendered_and_single_braces_are_text():
    assert r.render_text("Hi {{ name }}, {x} {{n}}!", {"name": "Ann", "n": 3}) == "Hi Ann, {x} 3!"


def test_values_are_not_rendered_again():
    assert r.render_text("{{ a }}", {"a": "{{ b }}", "b": "no"}) == "{{ b }}"


@pytest.mark.parametrize("text", [
    "{{ user.password }}", "{{ x|upper }}", "{{ __import__('os') }}", "{{ 0.__class__ }}", "{% if %}{{", "{{}}",
])
def test_anything_but_a_name_is_a_syntax_error(text):
    with pytest.raises(r.TemplateSyntaxError) as exc:
        r.parse(text)
    # a domain error the user reads (400), with its position
    assert isinstance(exc.value, MessagingInvalid) and exc.value.code == "template_syntax"
    assert "position" in exc.value.message or "Unclosed" in exc.value.message


def test_missing_variable_names_them_all():
    with pytest.raises(r.MissingVariablesError) as exc:
        r.render({"title": "{{ a }}", "desc": "{{ b }} {{ a }}"}, {})
    assert exc.value.names == ["a", "b"]


def test_structured_content_renders_every_string():
    out = r.render({"title": "Hi {{ n }}", "url": "https://x.example/{{ n }}", "lat": 1.5}, {"n": "7"})
    assert out == {"title": "Hi 7", "url": "https://x.example/7", "lat": 1.5}


def test_object_values_refused():
    with pytest.raises(r.TemplateSyntaxError):
        r.render_text("{{ a }}", {"a": object()})


def test_declarations_normalized_and_checked():
    decl = r.normalize_declarations(["name", {"name": "city", "default": "Beijing"}])
    assert decl[0] == {"name": "name", "label": "name", "default": None, "required": True}
    assert decl[1]["required"] is False and r.defaults_of(decl) == {"city": "Beijing"}
    with pytest.raises(r.DeclarationError, match="declared twice"):
        r.normalize_declarations(["a", "a"])
    with pytest.raises(r.DeclarationError, match="Invalid variable name"):
        r.normalize_declarations([{"name": "bad name"}])
    with pytest.raises(r.DeclarationError, match="Undeclared"):
        r.check_declared("{{ other }}", decl)
    r.check_declared("{{ name }} {{ receiver_name }}", decl)


@pytest.mark.parametrize("variables,fragment", [
    ({"a": {"b": [1]}}, "Unknown keys in the declaration of 'a': b"),
    ([{"name": "a", "label": ["x"]}], "label of 'a' must be text"),
    ([{"name": "a", "required": "yes"}], "'a' is required must be true or false"),
])
def test_declarations_of_another_shape_are_refused(variables, fragment):
    with pytest.raises(r.DeclarationError, match=fragment):
        r.normalize_declarations(variables)


def test_a_rendered_text_far_too_long_is_its_own_error():
    with pytest.raises(r.RenderedTooLongError) as exc:
        r.render_text("{{ a }}", {"a": "x" * (r.MAX_RENDERED_LENGTH + 1)})
    assert exc.value.code == "too_long"


@pytest.mark.parametrize("content", [
    "Hi {{ name }}, code {{code}} {single} braces",
    {"title": "For {{ name }}", "items": ["{{ code }}", 3, None], "url": "https://x/{{code}}"},
    "no placeholders at all",
])
def test_compiled_content_renders_like_render(content):
    """A broadcast parses its content once (`compile_content`) and renders it per receiver:
    the same text, the same names, the same errors as `render`."""
    compiled = r.compile_content(content)
    assert compiled.names == r.placeholders(content)
    for values in ({"name": "Ann", "code": 7}, {"name": "{{ code }}", "code": ["a", "b"]}):
        assert compiled.render(values) == r.render(content, values)
    if compiled.names:
        with pytest.raises(r.MissingVariablesError) as exc:
            compiled.render({})
        assert exc.value.names == sorted(compiled.names)
        assert compiled.missing({"name": "x"}) == compiled.names - {"name"}
        with pytest.raises(r.TemplateSyntaxError):
            compiled.render({"name": object(), "code": object()})


def test_compiled_content_is_parsed_once(monkeypatch):
    compiled = r.compile_content({"a": "{{ x }}", "b": ["{{ y }} and {{x}}"]})
    calls = []
    monkeypatch.setattr(r, "parse", lambda text: calls.append(text) or [])
    for i in range(100):
        compiled.render({"x": i, "y": i})
    assert calls == []


def test_compiled_content_refuses_bad_syntax_at_once():
    with pytest.raises(r.TemplateSyntaxError):
        r.compile_content({"a": "{{ x.y }}"})
