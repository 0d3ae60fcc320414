"""The `when` language (SPEC 3.2): a small, safe expression language over references.

Pipeline: git -> load -> validate/plan -> execute. Validation parses every component's `when`
with `parse_condition`, so a syntax error or an unknown name fails the revision before it is
planned; planning evaluates the parsed `Condition` per environment to decide whether the component
is part of it. A hand-written tokenizer and recursive-descent parser build a tree of frozen
dataclasses; nothing is ever handed to Python's `eval`, and input size and nesting are bounded, so
hostile text gives an `ExpressionError` with a column, never a crash or a hang.

Grammar, loosest first (comparisons do not chain; `a < b < c` is an error):

    condition  := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand]
    operand    := string | number | true | false | null | reference | "(" or_expr ")"
                | "[" [operand ("," operand)* [","]] "]"

Semantics, chosen to be strict rather than Pythonic so a typo cannot silently turn a component off:
- the condition, and every operand of `and`, `or` and `not`, must be a boolean; nothing is
  "truthy" (`vars.region` alone is an error unless the variable is true or false);
- `==` and `!=` compare type and value: booleans never equal numbers, `1 == 1.0`, `'5' != 5`;
- `<`, `<=`, `>`, `>=` need two numbers or two strings;
- `x in y` needs a list (membership by `==`) or a string (substring, `x` a string) on the right;
- `and` and `or` short-circuit: `false and vars.missing` is false without reading the variable.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from gitopsd.engine.condition_tokens import Token, tokenize
from gitopsd.engine.references import ExpressionError, Reference, Scope, parse_reference, resolve

MAX_CONDITION_LENGTH = 1024
MAX_NESTING = 32
MAX_VALUE_DEPTH = 64

# --- Tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """A literal string, number, boolean or null."""

    value: str | int | float | bool | None
    column: int

    def evaluate(self, scope: Scope) -> Any:
        return self.value


@dataclass(frozen=True)
class Name:
    """A reference such as `vars.region`, resolved against the scope."""

    reference: Reference
    column: int

    def evaluate(self, scope: Scope) -> Any:
        try:
            return resolve(self.reference, scope)
        except ExpressionError as error:
            raise ExpressionError(error.message, column=self.column) from error


@dataclass(frozen=True)
class ListOf:
    """A list literal `[a, b]`, the right-hand side of `in`."""

    items: tuple[Node, ...]
    column: int

    def evaluate(self, scope: Scope) -> Any:
        return [item.evaluate(scope) for item in self.items]


@dataclass(frozen=True)
class Not:
    """`not operand`; the operand must be a boolean."""

    operand: Node
    column: int

    def evaluate(self, scope: Scope) -> Any:
        value = self.operand.evaluate(scope)
        return not _require_bool(value, "'not' needs true or false", column=self.operand.column)


@dataclass(frozen=True)
class BoolOp:
    """`a and b and ...` or `a or b or ...`, short-circuiting; every operand must be a boolean."""

    operator: str
    operands: tuple[Node, ...]
    column: int

    def evaluate(self, scope: Scope) -> Any:
        decisive = self.operator == "or"  # the value that ends the evaluation early
        message = f"'{self.operator}' needs true or false on both sides"
        for operand in self.operands:
            value = operand.evaluate(scope)
            if _require_bool(value, message, column=operand.column) is decisive:
                return decisive
        return not decisive


@dataclass(frozen=True)
class Comparison:
    """`left <operator> right` for ==, !=, <, <=, >, >=, in and not in; column is the operator's."""

    operator: str
    left: Node
    right: Node
    column: int

    def evaluate(self, scope: Scope) -> Any:
        compare = _COMPARATORS[self.operator]
        return compare(self.left.evaluate(scope), self.right.evaluate(scope), column=self.column)


Node: TypeAlias = Constant | Name | ListOf | Not | BoolOp | Comparison


@dataclass(frozen=True)
class Condition:
    """A parsed `when`; `references` lists each name it reads once, in order of first appearance."""

    text: str
    references: tuple[Reference, ...]
    tree: Node

    def evaluate(self, scope: Scope) -> bool:
        """True or false for `scope`; raises ExpressionError for a non-boolean or a type error."""
        value = self.tree.evaluate(scope)
        message = "condition must evaluate to true or false"
        return _require_bool(value, message, column=self.tree.column)


def parse_condition(text: str) -> Condition:
    """Parse a `when` expression; raises ExpressionError with the column where it went wrong."""
    if len(text) > MAX_CONDITION_LENGTH:
        message = f"condition is longer than {MAX_CONDITION_LENGTH} characters"
        raise ExpressionError(message, column=MAX_CONDITION_LENGTH + 1)
    if not text.strip():
        raise ExpressionError("empty condition", column=1)
    parser = _Parser(tokenize(text))
    tree = parser.parse()
    return Condition(text=text, references=tuple(dict.fromkeys(parser.references)), tree=tree)


# --- Parser -------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; `_depth` bounds recursion to MAX_NESTING levels."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0
        self._depth = 0
        self.references: list[Reference] = []

    def parse(self) -> Node:
        tree = self._or()
        token = self._peek()
        if token.kind != "end":
            message = f"unexpected {token.shown}; expected 'and', 'or', a comparison or the end"
            raise ExpressionError(message, column=token.column)
        return tree

    def _or(self) -> Node:
        return self._chain("or", self._and)

    def _and(self) -> Node:
        return self._chain("and", self._not)

    def _chain(self, word: str, parse_operand: Callable[[], Node]) -> Node:
        operands = [parse_operand()]
        column = self._peek().column
        while self._is_keyword(word):
            self._advance()
            operands.append(parse_operand())
        if len(operands) == 1:
            return operands[0]
        return BoolOp(word, tuple(operands), column)

    def _not(self) -> Node:
        token = self._peek()
        if not self._is_keyword("not"):
            return self._comparison()
        self._advance()
        self._enter(token)
        operand = self._not()
        self._depth -= 1
        return Not(operand, token.column)

    def _comparison(self) -> Node:
        left = self._operand()
        token = self._peek()
        comparator = self._take_comparator()
        if comparator is None:
            return left
        right = self._operand()
        following = self._peek()
        if self._take_comparator() is not None:
            message = "comparisons cannot be chained; join them with 'and' (a < b and b < c)"
            raise ExpressionError(message, column=following.column)
        return Comparison(comparator, left, right, token.column)

    def _take_comparator(self) -> str | None:
        token = self._peek()
        if token.kind == "op" or self._is_keyword("in"):
            self._advance()
            return token.text
        if not self._is_keyword("not"):
            return None
        self._advance()
        if not self._is_keyword("in"):
            raise ExpressionError("expected 'in' after 'not'", column=self._peek().column)
        self._advance()
        return "not in"

    def _operand(self) -> Node:
        token = self._peek()
        if token.kind == "name":
            return self._name()
        if token.kind == "literal":
            self._advance()
            node: Node = Constant(token.value, token.column)
        elif token.kind == "(":
            node = self._group()
        elif token.kind == "[":
            node = self._list()
        else:
            message = f"expected a value (a name, literal, list or '('), got {token.shown}"
            raise ExpressionError(message, column=token.column)
        self._reject_postfix()
        return node

    def _name(self) -> Node:
        token = self._advance()
        self._reject_postfix()
        try:
            reference = parse_reference(token.text)
        except ExpressionError as error:
            column = token.column + (error.column or 1) - 1
            raise ExpressionError(error.message, column=column) from error
        if reference.root == "secrets":  # known only at a driver call, never to a decision
            message = "a condition cannot read a secret (secrets reach drivers only)"
            raise ExpressionError(message, column=token.column)
        self.references.append(reference)
        return Name(reference, token.column)

    def _group(self) -> Node:
        opening = self._advance()
        self._enter(opening)
        inner = self._or()
        if self._peek().kind != ")":
            message = f"missing ')' to close '(' at column {opening.column}"
            raise ExpressionError(message, column=self._peek().column)
        self._advance()
        self._depth -= 1
        return inner

    def _list(self) -> Node:
        opening = self._advance()
        self._enter(opening)
        items: list[Node] = []
        while self._peek().kind != "]":
            items.append(self._operand())
            if self._peek().kind == ",":
                self._advance()
            elif self._peek().kind != "]":
                message = f"expected ',' or ']' in the list started at column {opening.column}"
                raise ExpressionError(message, column=self._peek().column)
        self._advance()
        self._depth -= 1
        return ListOf(tuple(items), opening.column)

    def _reject_postfix(self) -> None:
        token = self._peek()
        if token.kind == "(":
            raise ExpressionError("function calls are not allowed", column=token.column)
        if token.kind == "[":
            raise ExpressionError("indexing and subscripts are not allowed", column=token.column)
        if token.kind == ".":
            message = "attribute access is only allowed inside references such as vars.name"
            raise ExpressionError(message, column=token.column)

    def _enter(self, token: Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            message = f"condition is nested deeper than {MAX_NESTING} levels"
            raise ExpressionError(message, column=token.column)

    def _is_keyword(self, word: str) -> bool:
        token = self._peek()
        return token.kind == "keyword" and token.text == word

    def _peek(self) -> Token:
        return self._tokens[self._index]

    def _advance(self) -> Token:
        token = self._tokens[self._index]
        self._index = min(self._index + 1, len(self._tokens) - 1)
        return token


# --- Evaluation ---------------------------------------------------------------------------------


def _require_bool(value: Any, message: str, *, column: int) -> bool:
    if isinstance(value, bool):
        return value
    raise ExpressionError(f"{message}, got {_describe(value)}", column=column)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def _describe(value: Any) -> str:
    """A short user-facing rendering: 'dev', 3, true, null, a list, a mapping."""
    kind = _kind(value)
    if kind == "string":
        return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    if kind in ("boolean", "null"):
        return {True: "true", False: "false", None: "null"}[value]
    if kind == "number":
        return repr(value)
    return f"a {kind}"


def _equal(left: Any, right: Any, *, depth: int = 0) -> bool:
    if depth > MAX_VALUE_DEPTH:
        raise ExpressionError(f"values nested deeper than {MAX_VALUE_DEPTH} levels")
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "list":
        pairs: Iterator[tuple[Any, Any]] = zip(left, right, strict=False)
        return len(left) == len(right) and all(_equal(a, b, depth=depth + 1) for a, b in pairs)
    if kind == "mapping":
        keys_match = set(left) == set(right)
        return keys_match and all(_equal(left[k], right[k], depth=depth + 1) for k in left)
    return bool(left == right)


def _equals(left: Any, right: Any, *, column: int) -> bool:
    try:
        return _equal(left, right)
    except ExpressionError as error:
        raise ExpressionError(error.message, column=column) from error


def _differs(left: Any, right: Any, *, column: int) -> bool:
    return not _equals(left, right, column=column)


def _contains(item: Any, container: Any, *, column: int) -> bool:
    kind = _kind(container)
    if kind == "list":
        return any(_equals(item, element, column=column) for element in container)
    if kind != "string":
        message = f"'in' needs a list or a string on the right, got {_describe(container)}"
        raise ExpressionError(message, column=column)
    if not isinstance(item, str):
        message = (
            f"'in' with a string on the right needs a string on the left, got {_describe(item)}"
        )
        raise ExpressionError(message, column=column)
    return item in container


def _not_contains(item: Any, container: Any, *, column: int) -> bool:
    return not _contains(item, container, column=column)


def _ordering(symbol: str, compare: Callable[[Any, Any], bool]) -> _Comparator:
    def ordered(left: Any, right: Any, *, column: int) -> bool:
        kinds = (_kind(left), _kind(right))
        if kinds not in (("number", "number"), ("string", "string")):
            message = (
                f"cannot compare {_describe(left)} with {_describe(right)} using '{symbol}'; "
                "ordering needs two numbers or two strings"
            )
            raise ExpressionError(message, column=column)
        return bool(compare(left, right))

    return ordered


class _Comparator(Protocol):
    def __call__(self, left: Any, right: Any, /, *, column: int) -> bool: ...


_COMPARATORS: Mapping[str, _Comparator] = {
    "==": _equals,
    "!=": _differs,
    "<": _ordering("<", operator.lt),
    "<=": _ordering("<=", operator.le),
    ">": _ordering(">", operator.gt),
    ">=": _ordering(">=", operator.ge),
    "in": _contains,
    "not in": _not_contains,
}
