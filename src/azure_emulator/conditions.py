"""The syntax of role-assignment conditions (Azure ABAC, condition version 2.0), checked when an assignment
is written, as Azure refuses a condition that does not parse.

The grammar is the one Microsoft documents ("Azure role assignment condition format and syntax"):

- expressions joined by `AND`/`&&` or `OR`/`||`; mixing both at one level without parentheses is
  ambiguous and refused ("you must add parentheses");
- `NOT`/`!` before any expression; parentheses group;
- the function operators `ActionMatches{'<action>'}`, `SubOperationMatches{'<suboperation>'}` and
  `Exists <attribute>`;
- comparisons `<operand> <operator> <operand>`, where an operand is an attribute
  (`@Resource[...]`, `@Request[...]`, `@Principal[...]`, `@Environment[...]`), a literal (a quoted
  string, an integer, `true`/`false`, a GUID) or a set of literals (`{'a', 'b'}`), and an operator is one
  of the Bool/String/Numeric/DateTime/Guid comparisons, the String/Numeric/Guid ones also behind a
  cross-product quantifier (`ForAnyOfAnyValues:StringEquals`). Keywords and operators are matched
  case-insensitively (`stringEquals` is accepted, as the Azure CLI's own examples use it).

Only the syntax is checked: the emulator does not evaluate conditions, nor check that the attributes
exist for the actions they target.
"""

from __future__ import annotations

import dataclasses
import re

VERSION = "2.0"
# "A condition can be up to 8 KB long." (FAQ for Azure role assignment conditions)
MAX_BYTES = 8 * 1024

_ATTRIBUTE_SOURCES = ("resource", "request", "principal", "environment")
_BASE_OPERATORS = {
    "boolequals",
    "boolnotequals",
    "datetimeequals",
    "datetimenotequals",
    "datetimegreaterthan",
    "datetimegreaterthanequals",
    "datetimelessthan",
    "datetimelessthanequals",
}
_QUANTIFIABLE_OPERATORS = {
    *(
        f"string{name}{case}"
        for name in ("equals", "notequals", "startswith", "notstartswith", "like", "notlike")
        for case in ("", "ignorecase")
    ),
    *(
        f"numeric{name}"
        for name in (
            "equals",
            "notequals",
            "greaterthan",
            "greaterthanequals",
            "lessthan",
            "lessthanequals",
        )
    ),
    "guidequals",
    "guidnotequals",
}
_QUANTIFIERS = ("foranyofanyvalues", "forallofanyvalues", "foranyofallvalues", "forallofallvalues")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_WORD = re.compile(r"[A-Za-z0-9_.:\-]+")


class ConditionError(ValueError):
    """A condition that does not parse; `position` is the offset of the offending text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "{", "}", ",", "not", "and", "or", "string", "attribute", "word", "end"
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in "(){},":
            tokens.append(_Token(char, char, index))
            index += 1
        elif text.startswith("&&", index):
            tokens.append(_Token("and", "&&", index))
            index += 2
        elif text.startswith("||", index):
            tokens.append(_Token("or", "||", index))
            index += 2
        elif char == "!":
            tokens.append(_Token("not", "!", index))
            index += 1
        elif char == "'":
            end = index + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise ConditionError("unterminated string", index)
            tokens.append(_Token("string", text[index : end + 1], index))
            index = end + 1
        elif char == "@":
            match = re.compile(r"@([A-Za-z]+)\[([^\]]+)\]").match(text, index)
            if match is None or match.group(1).lower() not in _ATTRIBUTE_SOURCES:
                raise ConditionError("invalid attribute", index)
            tokens.append(_Token("attribute", match.group(0), index))
            index = match.end()
        else:
            word = _WORD.match(text, index)
            if word is None:
                raise ConditionError(f"unexpected character {char!r}", index)
            lowered = word.group(0).lower()
            kind = {"and": "and", "or": "or", "not": "not"}.get(lowered, "word")
            tokens.append(_Token(kind, word.group(0), index))
            index = word.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _is_operator(word: str) -> bool:
    lowered = word.lower()
    if lowered in _BASE_OPERATORS or lowered in _QUANTIFIABLE_OPERATORS:
        return True
    quantifier, _, operator = lowered.partition(":")
    return quantifier in _QUANTIFIERS and operator in _QUANTIFIABLE_OPERATORS


def _is_literal_word(word: str) -> bool:
    return word.lower() in ("true", "false") or bool(_INTEGER.match(word)) or bool(_GUID.match(word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self, kind: str) -> _Token:
        token = self.token
        if token.kind != kind:
            expected = "end of condition" if kind == "end" else repr(kind)
            raise ConditionError(
                f"expected {expected}, found {token.text or 'end of condition'!r}", token.position
            )
        self.index += 1
        return token

    def expression(self) -> None:
        self.unary()
        joiner: str | None = None
        while self.token.kind in ("and", "or"):
            if joiner is not None and self.token.kind != joiner:
                raise ConditionError("AND and OR mixed without parentheses", self.token.position)
            joiner = self.token.kind
            self.index += 1
            self.unary()

    def unary(self) -> None:
        if self.token.kind == "not":
            self.index += 1
            self.unary()
            return
        self.primary()

    def primary(self) -> None:
        token = self.token
        if token.kind == "(":
            self.index += 1
            self.expression()
            self.take(")")
            return
        if token.kind == "word" and token.text.lower() in ("actionmatches", "suboperationmatches"):
            self.index += 1
            self.take("{")
            self.take("string")
            self.take("}")
            return
        if token.kind == "word" and token.text.lower() == "exists":
            self.index += 1
            self.take("attribute")
            return
        self.operand()
        operator = self.token
        if operator.kind != "word" or not _is_operator(operator.text):
            raise ConditionError(
                f"expected an operator, found {operator.text or 'end of condition'!r}", operator.position
            )
        self.index += 1
        self.operand()

    def operand(self) -> None:
        token = self.token
        if token.kind == "attribute":
            self.index += 1
        elif token.kind == "{":
            self.index += 1
            self.literal()
            while self.token.kind == ",":
                self.index += 1
                self.literal()
            self.take("}")
        else:
            self.literal()

    def literal(self) -> None:
        token = self.token
        if token.kind == "string" or (token.kind == "word" and _is_literal_word(token.text)):
            self.index += 1
            return
        raise ConditionError(f"expected a value, found {token.text or 'end of condition'!r}", token.position)


def check_syntax(condition: str) -> None:
    """Raise ConditionError unless `condition` parses as a role-assignment condition."""
    parser = _Parser(condition)
    if parser.token.kind == "end":
        raise ConditionError("empty condition", 0)
    parser.expression()
    parser.take("end")
