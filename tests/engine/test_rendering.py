"""`${{ ... }}` placeholders: finding, typing, stringifying and error paths (SPEC 3.1)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitopsd.engine import rendering
from gitopsd.engine.references import ExpressionError, Scope, parse_reference

SCOPE = Scope(
    environment="staging",
    revision="0123abcd",
    variables={
        "node_count": 7,
        "ratio": 0.25,
        "region": "westeurope",
        "enabled": True,
        "disabled": False,
        "nothing": None,
        "zones": ["1", "2"],
        "tags": {"team": "platform", "cost": 3},
    },
    outputs={"network": {"vnet_id": "vnet-42", "cidrs": ["10.0.0.0/16"]}},
)


def render_error(value: Any) -> rendering.RenderError:
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render(value, SCOPE)
    return caught.value


# --- Whole values keep their type ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ vars.node_count }}", 7),
        ("${{vars.ratio}}", 0.25),
        ("${{ vars.enabled }}", True),
        ("${{ vars.disabled }}", False),
        ("${{ vars.nothing }}", None),
        ("${{ vars.zones }}", ["1", "2"]),
        ("${{ vars.tags }}", {"team": "platform", "cost": 3}),
        ("  ${{ vars.node_count }}\n", 7),
        ("${{ env.name }}", "staging"),
        ("${{ revision }}", "0123abcd"),
        ("${{ components.network.outputs.vnet_id }}", "vnet-42"),
        ("${{ components.network.outputs.cidrs }}", ["10.0.0.0/16"]),
    ],
)
def test_a_value_that_is_one_placeholder_keeps_its_type(template: str, expected: Any) -> None:
    rendered = rendering.render(template, SCOPE)
    assert rendered == expected
    assert type(rendered) is type(expected)


def test_containers_taken_from_the_scope_are_copies() -> None:
    rendered = rendering.render({"zones": "${{ vars.zones }}"}, SCOPE)
    rendered["zones"].append("3")
    assert SCOPE.variables["zones"] == ["1", "2"]


# --- Interpolation stringifies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("nodes=${{ vars.node_count }}", "nodes=7"),
        ("ratio ${{ vars.ratio }}", "ratio 0.25"),
        ("on=${{ vars.enabled }},off=${{ vars.disabled }}", "on=true,off=false"),
        ("x=${{ vars.nothing }}", "x=null"),
        ("zones=${{ vars.zones }}", 'zones=["1","2"]'),
        ("tags=${{ vars.tags }}", 'tags={"cost":3,"team":"platform"}'),
        ("${{ env.name }}-${{ vars.region }}", "staging-westeurope"),
        ("${{ env.name }}${{ revision }}", "staging0123abcd"),
        ("id: ${{ components.network.outputs.vnet_id }}!", "id: vnet-42!"),
        ("no placeholders here", "no placeholders here"),
        ("$ {{ and }} and ${ are plain text", "$ {{ and }} and ${ are plain text"),
    ],
)
def test_placeholders_inside_longer_strings_are_stringified(template: str, expected: str) -> None:
    assert rendering.render(template, SCOPE) == expected


@pytest.mark.parametrize(
    ("template", "expected", "found"),
    [
        ("$${{ vars.node_count }}", "${{ vars.node_count }}", []),
        ("echo $${{ x }} ${{ vars.node_count }}", "echo ${{ x }} 7", ["vars.node_count"]),
        ("$${{ unterminated", "${{ unterminated", []),
        ("$$${{ vars.region }}", "$${{ vars.region }}", []),
    ],
)
def test_double_dollar_escapes_a_placeholder(
    template: str, expected: str, found: list[str]
) -> None:
    assert rendering.render(template, SCOPE) == expected
    assert [p.expression for p in rendering.iter_placeholders(template)] == found


def test_nested_dicts_and_lists_are_walked() -> None:
    value = {
        "name": "${{ env.name }}",
        "cluster": {"nodes": "${{ vars.node_count }}", "zones": ["a", "${{ vars.region }}-1"]},
        "count": 3,
        "ready": True,
        "none": None,
        "items": [{"id": "${{ components.network.outputs.vnet_id }}"}],
    }
    assert rendering.render(value, SCOPE) == {
        "name": "staging",
        "cluster": {"nodes": 7, "zones": ["a", "westeurope-1"]},
        "count": 3,
        "ready": True,
        "none": None,
        "items": [{"id": "vnet-42"}],
    }


def test_mapping_keys_are_not_rendered() -> None:
    assert rendering.render({"${{ env.name }}": "x"}, SCOPE) == {"${{ env.name }}": "x"}


def test_substituted_values_are_not_rendered_again() -> None:
    scope = Scope(environment="dev", revision="r", variables={"raw": "${{ env.name }}"})
    assert rendering.render("${{ vars.raw }}", scope) == "${{ env.name }}"
    assert rendering.render("x ${{ vars.raw }}", scope) == "x ${{ env.name }}"


def test_render_does_not_mutate_its_input() -> None:
    value = {"a": ["${{ vars.node_count }}", {"b": "${{ vars.zones }}"}], "c": ("${{ env.name }}",)}
    before = copy.deepcopy(value)
    rendered = rendering.render(value, SCOPE)
    assert value == before
    assert rendered == {"a": [7, {"b": ["1", "2"]}], "c": ("staging",)}
    assert rendered["a"] is not value["a"]


# --- Finding placeholders -----------------------------------------------------------------------


def test_iter_placeholders_reports_paths_and_stripped_expressions() -> None:
    value = {
        "a": "${{ env.name }}",
        "b": ["x", {"c": "pre ${{vars.x}} mid ${{ revision }} post"}],
        "d": 42,
    }
    assert list(rendering.iter_placeholders(value)) == [
        rendering.Placeholder(path=("a",), expression="env.name"),
        rendering.Placeholder(path=("b", 1, "c"), expression="vars.x"),
        rendering.Placeholder(path=("b", 1, "c"), expression="revision"),
    ]
    assert list(rendering.iter_placeholders("${{ revision }}")) == [
        rendering.Placeholder(path=(), expression="revision")
    ]
    assert list(rendering.iter_placeholders(7)) == []


def test_references_in_parses_every_placeholder() -> None:
    value = {"vnet": "${{ components.network.outputs.vnet_id }}", "n": ["${{ vars.n }}"]}
    found = list(rendering.references_in(value))
    assert found == [
        (("vnet",), parse_reference("components.network.outputs.vnet_id")),
        (("n", 0), parse_reference("vars.n")),
    ]
    assert found[0][1].component == "network"


@pytest.mark.parametrize(
    ("value", "fragment", "path", "column"),
    [
        ({"a": ["ok", "x ${{ vars.__class__ }}"]}, "names starting with '_'", ("a", 1), 12),
        ({"a": "${{ foo.bar }}"}, "unknown name 'foo'", ("a",), 5),
        ({"a": "${{ }}"}, "empty reference", ("a",), 4),
        ({"a": "${{ vars.x + 1 }}"}, "is not a variable name", ("a",), 5),
    ],
)
def test_references_in_rejects_malformed_placeholders(
    value: Any, fragment: str, path: tuple[str | int, ...], column: int
) -> None:
    with pytest.raises(rendering.RenderError) as caught:
        list(rendering.references_in(value))
    assert fragment in caught.value.message
    assert caught.value.path == path
    assert caught.value.column == column


@pytest.mark.parametrize(
    ("text", "root", "parts", "component"),
    [
        ("env.name", "env", ("name",), None),
        (" revision ", "revision", (), None),
        ("vars.node-count_2", "vars", ("node-count_2",), None),
        (
            "components.net-1.outputs.vnet_id",
            "components",
            ("net-1", "outputs", "vnet_id"),
            "net-1",
        ),
    ],
)
def test_placeholder_references_take_the_allowed_forms(
    text: str, root: str, parts: tuple[str, ...], component: str | None
) -> None:
    [(_, reference)] = rendering.references_in("${{" + text + "}}")
    assert (reference.text, reference.root, reference.parts) == (text.strip(), root, parts)
    assert reference.component == component


def test_overlong_reference_in_a_placeholder_is_rejected() -> None:
    with pytest.raises(rendering.RenderError, match="longer than 256 characters"):
        rendering.render({"a": "${{ vars." + "a" * 300 + " }}"}, SCOPE)


# --- Errors -------------------------------------------------------------------------------------


def test_unterminated_placeholder_is_an_error_with_path_and_column() -> None:
    error = render_error({"cmd": ["echo", "hello ${{ vars.region"]})
    assert "unterminated '${{'" in error.message
    assert error.path == ("cmd", 1)
    assert error.column == 7
    assert str(error) == f"cmd[1]: {error.message} (at column 7)"
    with pytest.raises(rendering.RenderError):
        list(rendering.iter_placeholders({"x": "${{ revision }"}))


def test_unknown_variable_names_the_path() -> None:
    error = render_error({"spec": {"sizes": ["${{ vars.node_count }}", "${{  vars.cpu }}"]}})
    assert error.message == "unknown variable 'cpu'"
    assert error.path == ("spec", "sizes", 1)
    assert error.column == 6
    assert str(error) == "spec.sizes[1]: unknown variable 'cpu' (at column 6)"
    assert isinstance(error, ExpressionError)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${{ components.db.outputs.host }}", "no outputs recorded for component 'db'"),
        ("${{ components.network.outputs.vnet }}", "component 'network' has no output 'vnet'"),
    ],
)
def test_missing_outputs_are_errors(template: str, message: str) -> None:
    error = render_error({"input": template})
    assert error.message == message
    assert error.path == ("input",)


def test_self_referencing_value_is_an_error_not_a_recursion_error() -> None:
    looped: list[Any] = []
    looped.append(looped)
    assert "nested deeper than" in render_error(looped).message
    with pytest.raises(rendering.RenderError):
        list(rendering.iter_placeholders(looped))


def test_format_path_quotes_keys_that_are_not_plain_names() -> None:
    assert rendering.format_path(("spec", "nodes", 0, "name")) == "spec.nodes[0].name"
    assert rendering.format_path(("a b", 2)) == '["a b"][2]'
    assert rendering.format_path(()) == ""


def test_interpolating_a_self_referencing_value_is_a_render_error() -> None:
    looped: list[object] = []
    looped.append(looped)
    scope = Scope(environment="dev", revision="r", variables={"loop": looped})
    with pytest.raises(rendering.RenderError) as caught:
        rendering.render({"a": "x=${{ vars.loop }}"}, scope)
    assert caught.value.message.startswith("cannot render vars.loop into a string")
    assert caught.value.path == ("a",)
