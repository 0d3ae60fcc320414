"""The tokens of the `when` language: literals, names, operators and punctuation.

The first step of `engine.conditions`: a hand-written scanner, so hostile text gets an
`ExpressionError` with the column where it went wrong, never a Python tokenizer's surprises.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gitopsd.engine.references import ExpressionError

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>-?[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.-]*)"
    r"|(?P<op>==|!=|<=|>=|<|>)"
    r"|(?P<punct>[()\[\],.])"
)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]")
_OPERATOR_WORDS = frozenset({"and", "or", "not", "in"})
_CONSTANTS: Mapping[str, bool | None] = {
    **{"true": True, "false": False, "null": None},
    **{"True": True, "False": False, "None": None},  # Python spellings, for convenience
}
_CHARACTER_HINTS = {"=": "use '==' to compare", "!": "use 'not'", "&": "use 'and'", "|": "use 'or'"}
_ESCAPES = frozenset({"\\", "'", '"'})


@dataclass(frozen=True)
class Token:
    kind: str  # "literal", "name", "keyword", "op", "(", ")", "[", "]", ",", ".", "end"
    text: str
    column: int
    value: str | int | float | bool | None = None

    @property
    def shown(self) -> str:
        return "the end of the condition" if self.kind == "end" else repr(self.text)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        token: Token | None
        if text[position] in "'\"":
            token, position = _scan_string(text, position)
        else:
            token, position = _scan_token(text, position)
        if token is not None:
            tokens.append(token)
    tokens.append(Token("end", "end of condition", len(text) + 1))
    return tokens


def _scan_string(text: str, start: int) -> tuple[Token, int]:
    quote, chars, position = text[start], [], start + 1
    while position < len(text) and text[position] != quote:
        char = text[position]
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped not in _ESCAPES:
                message = "unsupported escape in string; only \\\\, \\' and \\\" are allowed"
                raise ExpressionError(message, column=position + 1)
            char, position = escaped, position + 1
        chars.append(char)
        position += 1
    if position >= len(text):
        raise ExpressionError(f"unterminated string (no closing {quote})", column=start + 1)
    return Token("literal", text[start : position + 1], start + 1, "".join(chars)), position + 1


def _scan_token(text: str, start: int) -> tuple[Token | None, int]:
    match = _TOKEN.match(text, start)
    if match is None:
        raise _unknown_character(text[start], column=start + 1)
    kind, lexeme, column = match.lastgroup, match.group(), start + 1
    if kind == "space":
        return None, match.end()
    if kind == "number":
        return _number_token(text, match), match.end()
    if kind == "word":
        return _word_token(lexeme, column=column), match.end()
    if kind == "op":
        return Token("op", lexeme, column), match.end()
    return Token(lexeme, lexeme, column), match.end()  # punctuation is its own kind


def _number_token(text: str, match: re.Match[str]) -> Token:
    lexeme, column = match.group(), match.start() + 1
    if _NUMBER_TAIL.match(text, match.end()):
        raise ExpressionError(f"invalid number starting with {lexeme!r}", column=column)
    value: int | float = float(lexeme) if "." in lexeme else int(lexeme)
    return Token("literal", lexeme, column, value)


def _word_token(word: str, *, column: int) -> Token:
    if word in _OPERATOR_WORDS:
        return Token("keyword", word, column)
    if word in _CONSTANTS:
        return Token("literal", word, column, _CONSTANTS[word])
    if word == "is":
        raise ExpressionError("'is' is not supported; use '==' or '!='", column=column)
    if keyword.iskeyword(word):
        message = f"{word!r} is a Python keyword and is not allowed in conditions"
        raise ExpressionError(message, column=column)
    return Token("name", word, column)


def _unknown_character(char: str, *, column: int) -> ExpressionError:
    message = f"unexpected character {char!r}"
    hint = _CHARACTER_HINTS.get(char)
    return ExpressionError(f"{message}; {hint}" if hint else message, column=column)
