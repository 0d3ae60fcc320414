"""The `when` language: operators, precedence, strict types and hostile input (SPEC 3.2)."""

from __future__ import annotations

import pytest

from gitopsd.engine import conditions
from gitopsd.engine.references import ExpressionError, Scope, parse_reference

SCOPE = Scope(
    environment="prod",
    revision="abc123",
    variables={
        "node_count": 5,
        "ratio": 0.5,
        "region": "westeurope",
        "zones": ["1", "2", "3"],
        "enabled": True,
        "disabled": False,
        "nothing": None,
        "tags": {"team": "platform"},
    },
    outputs={"network": {"vnet_id": "vnet-1", "subnets": 3}},
)


def evaluate(text: str) -> bool:
    return conditions.parse_condition(text).evaluate(SCOPE)


def parse_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        conditions.parse_condition(text)
    return caught.value


def evaluation_error(text: str) -> ExpressionError:
    condition = conditions.parse_condition(text)
    with pytest.raises(ExpressionError) as caught:
        condition.evaluate(SCOPE)
    return caught.value


# --- Operators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env.name == 'prod'", True),
        ("env.name == 'dev'", False),
        ('env.name != "dev"', True),
        ("env.name != 'prod'", False),
        ("vars.node_count < 6", True),
        ("vars.node_count < 5", False),
        ("vars.node_count <= 5", True),
        ("vars.node_count <= 4", False),
        ("vars.node_count > 4", True),
        ("vars.node_count > 5", False),
        ("vars.node_count >= 5", True),
        ("vars.node_count >= 6", False),
        ("vars.ratio < 0.75", True),
        ("-1 < 0", True),
        ("'a' < 'b'", True),
        ("revision == 'abc123'", True),
        ("components.network.outputs.vnet_id == 'vnet-1'", True),
        ("components.network.outputs.subnets > 2", True),
    ],
)
def test_comparison_operators(text: str, expected: bool) -> None:
    assert evaluate(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'2' in vars.zones", True),
        ("'4' in vars.zones", False),
        ("'4' not in vars.zones", True),
        ("'2' not in vars.zones", False),
        ("env.name in ['staging', 'prod']", True),
        ("env.name in ['dev']", False),
        ("env.name not in ['dev', 'staging']", True),
        ("vars.node_count in [1, 5, 7,]", True),
        ("'west' in vars.region", True),
        ("'east' in vars.region", False),
        ("'east' not in vars.region", True),
        ("1 in []", False),
    ],
)
def test_membership_in_lists_and_strings(text: str, expected: bool) -> None:
    assert evaluate(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true and true", True),
        ("true and false", False),
        ("false or true", True),
        ("false or false", False),
        ("not false", True),
        ("not true", False),
        ("not not true", True),
        ("vars.enabled", True),
        ("vars.disabled", False),
        ("True and not False", True),
    ],
)
def test_boolean_operators(text: str, expected: bool) -> None:
    assert evaluate(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `and` binds tighter than `or`: true or (false and false)
        ("true or false and false", True),
        # ... and parentheses override it
        ("(true or false) and false", False),
        # `not` binds looser than a comparison: not (1 == 2)
        ("not 1 == 2", True),
        # ... and tighter than `and`: (not false) and false
        ("not false and false", False),
        ("not (false and false)", True),
        ("env.name == 'prod' and vars.node_count > 3 or vars.disabled", True),
        ("vars.disabled or env.name == 'dev' and vars.enabled", False),
    ],
)
def test_precedence(text: str, expected: bool) -> None:
    assert evaluate(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true == 1", False),
        ("false == 0", False),
        ("1 == 1.0", True),
        ("'5' == 5", False),
        ("vars.node_count == '5'", False),
        ("null == None", True),
        ("vars.nothing == null", True),
        ("vars.zones == ['1', '2', '3']", True),
        ("vars.zones == ['1', '2']", False),
        ("[[1, true]] == [[1, true]]", True),
        ("[1] == [true]", False),
        ("true in [1]", False),
    ],
)
def test_equality_compares_type_and_value(text: str, expected: bool) -> None:
    assert evaluate(text) is expected


def test_string_escapes() -> None:
    assert conditions.parse_condition(r"'it\'s' == " + '"it\'s"').evaluate(SCOPE) is True
    assert evaluate(r"'a\\b' == " + '"a\\\\b"') is True
    assert evaluate(r'"say \"hi\"" != ' + "'say \"hi\"'") is False


def test_and_or_short_circuit_without_reading_the_other_side() -> None:
    assert evaluate("false and vars.missing == 1") is False
    assert evaluate("true or vars.missing == 1") is True
    assert "unknown variable 'missing'" in str(evaluation_error("true and vars.missing == 1"))


# --- References ---------------------------------------------------------------------------------


def test_references_lists_each_name_once_in_order_of_appearance() -> None:
    condition = conditions.parse_condition(
        "vars.region == 'x' or (components.network.outputs.vnet_id != env.name "
        "and vars.region in [revision])"
    )
    assert [reference.text for reference in condition.references] == [
        "vars.region",
        "components.network.outputs.vnet_id",
        "env.name",
        "revision",
    ]
    assert condition.references[1] == parse_reference("components.network.outputs.vnet_id")
    assert condition.references[1].component == "network"


def test_condition_without_names_has_no_references() -> None:
    assert conditions.parse_condition("1 < 2").references == ()


def test_condition_is_immutable() -> None:
    condition = conditions.parse_condition("true")
    with pytest.raises(AttributeError):
        condition.text = "false"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("vars.missing == 1", "unknown variable 'missing'", 1),
        ("1 == components.db.outputs.id", "no outputs recorded for component 'db'", 6),
        ("components.network.outputs.nope == 1", "component 'network' has no output 'nope'", 1),
    ],
)
def test_unresolvable_names_fail_at_evaluation(text: str, fragment: str, column: int) -> None:
    error = evaluation_error(text)
    assert fragment in error.message
    assert error.column == column


# --- Types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("vars.region", "condition must evaluate to true or false, got 'westeurope'", 1),
        ("vars.node_count", "condition must evaluate to true or false, got 5", 1),
        ("'dev'", "condition must evaluate to true or false, got 'dev'", 1),
        ("vars.nothing", "got null", 1),
        ("[true]", "got a list", 1),
        ("not vars.region", "'not' needs true or false, got 'westeurope'", 5),
        ("true and vars.node_count", "'and' needs true or false on both sides, got 5", 10),
        ("false or 'yes'", "'or' needs true or false on both sides, got 'yes'", 10),
    ],
)
def test_non_boolean_results_are_errors(text: str, fragment: str, column: int) -> None:
    error = evaluation_error(text)
    assert fragment in error.message
    assert error.column == column


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("vars.region < 3", "cannot compare 'westeurope' with 3 using '<'", 13),
        ("1 >= '1'", "cannot compare 1 with '1' using '>='", 3),
        ("true > false", "cannot compare true with false using '>'", 6),
        ("null <= 1", "cannot compare null with 1 using '<='", 6),
        ("vars.zones > [1]", "cannot compare a list with a list using '>'", 12),
        ("vars.tags < 1", "cannot compare a mapping with 1", 11),
        ("1 in 2", "'in' needs a list or a string on the right, got 2", 3),
        ("'team' in vars.tags", "'in' needs a list or a string on the right, got a mapping", 8),
        ("1 not in null", "'in' needs a list or a string on the right, got null", 3),
        ("1 in vars.region", "needs a string on the left, got 1", 3),
    ],
)
def test_type_errors_are_expression_errors(text: str, fragment: str, column: int) -> None:
    error = evaluation_error(text)
    assert fragment in error.message
    assert error.column == column


# --- Syntax errors and hostile input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("'a'.upper", "attribute access is only allowed inside references", 4),
        ("(vars.region).upper", "attribute access", 14),
        ("foo()", "function calls are not allowed", 4),
        ("vars.region.upper()", "function calls are not allowed", 18),
        ("(true)(1)", "function calls are not allowed", 7),
        ("vars['x']", "indexing and subscripts are not allowed", 5),
        ("[1, 2][0] == 1", "indexing and subscripts are not allowed", 7),
        ("env.__class__", "names starting with '_' are not allowed", 5),
        ("vars.__dict__ == 1", "names starting with '_' are not allowed", 6),
        ("__import__", "names starting with '_' are not allowed", 1),
        ("lambda: true", "'lambda' is a Python keyword", 1),
        ("import os", "'import' is a Python keyword", 1),
        ("true if true else false", "'if' is a Python keyword", 6),
        ("x is None", "'is' is not supported; use '==' or '!='", 3),
        ("env.name == 'prod", "unterminated string", 13),
        ('env.name == "prod', "unterminated string", 13),
        (r"'a\nb' == 'a'", "unsupported escape", 3),
        ("true; false", "unexpected character ';'", 5),
        ("vars.a @ vars.b", "unexpected character '@'", 8),
        ("`id`", "unexpected character '`'", 1),
        ("{'a': 1}", "unexpected character '{'", 1),
        ("env.name = 'prod'", "use '=='", 10),
        ("!true", "use 'not'", 1),
        ("true && false", "use 'and'", 6),
        ("true || false", "use 'or'", 6),
        ("1 < 2 < 3", "comparisons cannot be chained", 7),
        ("env.name == 'a' == true", "comparisons cannot be chained", 17),
        ("(true", "missing ')' to close '(' at column 1", 6),
        ("true)", "unexpected ')'", 5),
        ("[1, 2", "expected ',' or ']'", 6),
        ("[1 2]", "expected ',' or ']'", 4),
        ("true and", "expected a value", 9),
        ("== 1", "expected a value", 1),
        ("()", "expected a value", 2),
        ("vars.a not vars.b", "expected 'in' after 'not'", 12),
        ("true false", "unexpected 'false'", 6),
        ("1.5e3 == 1", "invalid number", 1),
        ("12abc", "invalid number", 1),
        ("", "empty condition", 1),
        ("   ", "empty condition", 1),
        ("foo == 1", "unknown name 'foo'", 1),
        ("env.region == 'x'", "'env' only has 'env.name'", 1),
        ("vars.a.b", "expected vars.<name>", 1),
        ("components.Net.outputs.id", "is not a component name", 1),
        ("vars. == 1", "empty name between dots", 6),
        ("vars." + "a" * 300 + " == 1", "reference is longer than 256 characters", 1),
    ],
)
def test_syntax_errors_name_the_problem_and_column(text: str, fragment: str, column: int) -> None:
    error = parse_error(text)
    assert fragment in error.message
    assert error.column == column
    assert str(error) == f"{error.message} (at column {column})"


def test_text_over_1024_characters_is_rejected() -> None:
    assert conditions.parse_condition("true" + " " * 1020).evaluate(SCOPE) is True
    error = parse_error("true" + " " * 1021)
    assert error.message == "condition is longer than 1024 characters"


def test_100_kilobytes_of_input_is_rejected_quickly() -> None:
    error = parse_error("vars.a == 1 and " * 6400)
    assert "longer than 1024 characters" in error.message


def test_ten_thousand_nested_parentheses_give_a_clear_error() -> None:
    error = parse_error("(" * 10_000 + "true" + ")" * 10_000)
    assert isinstance(error, ExpressionError)
    assert "longer than 1024 characters" in error.message


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("(", ")"), ("[", "]"), ("not ", "")],
)
def test_nesting_deeper_than_32_levels_is_rejected(opening: str, closing: str) -> None:
    inner = "true" if opening != "[" else "1"
    at_limit = opening * 32 + inner + closing * 32
    conditions.parse_condition(at_limit if opening != "[" else f"1 in {at_limit}")
    error = parse_error(opening * 200 + inner + closing * 200)
    assert error.message == "condition is nested deeper than 32 levels"
    assert error.column == 32 * len(opening) + 1


def test_nesting_counts_parentheses_lists_and_nots_together() -> None:
    error = parse_error("(not [" * 11 + "1" + "])" * 11)
    assert "nested deeper than 32 levels" in error.message


def test_thirty_two_levels_evaluate() -> None:
    assert evaluate("(" * 32 + "env.name == 'prod'" + ")" * 32) is True
    assert evaluate("not " * 32 + "true") is True


def test_comparing_self_referencing_values_is_an_error_not_a_recursion_error() -> None:
    looped: list[object] = []
    looped.append(looped)
    scope = Scope(environment="dev", revision="r", variables={"loop": looped})
    condition = conditions.parse_condition("vars.loop == vars.loop")
    with pytest.raises(ExpressionError, match="nested deeper than 64 levels") as caught:
        condition.evaluate(scope)
    assert caught.value.column == 11
