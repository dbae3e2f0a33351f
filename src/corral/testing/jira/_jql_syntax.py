"""JQL text to a syntax tree: the tokenizer and the recursive-descent parser.

Grammar (keywords in any case)::

    query    := [or_expr] [ORDER BY sort ("," sort)*]
    or_expr  := and_expr ((OR | "||") and_expr)*
    and_expr := not_expr ((AND | "&&") not_expr)*
    not_expr := (NOT | "!") not_expr | "(" or_expr ")" | clause
    clause   := FIELD operator operand
    operator := = | != | < | <= | > | >= | ~ | !~ | IN | NOT IN | IS | IS NOT
    operand  := value | "(" value ("," value)* ")" | EMPTY | NULL
    value    := WORD | "quoted" | 'quoted' | function "(" ")"
    sort     := FIELD [ASC | DESC]

Errors carry Jira's wording and position ("(line 1, character 9)").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BoolOp", "Clause", "JqlError", "Node", "Operand", "Sort", "parse"]

_OPERATORS = "'=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'"


class JqlError(ValueError):
    """The query cannot be run; the message is Jira's, for `errorMessages`."""


# -- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "op", "(", ")", ",", "eof"
    text: str
    position: int  # 1-based character, as Jira reports it

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    def describe(self) -> str:
        return "EOF" if self.kind == "eof" else self.text


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<op>!=|<=|>=|!~|&&|\|\||[=<>~!])
      | (?P<punct>[(),])
      | (?P<quote>["'])
      | (?P<word>[^\s"'(),=<>~!&|]+)
    """,
    re.VERBOSE,
)


def _where(position: int) -> str:
    return f"(line 1, character {position})"


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        if match is None:
            raise JqlError(
                f"Error in the JQL Query: The character '{text[i]}' is a reserved JQL "
                f"character. You must enclose it in a string or use the escape "
                f"'\\u{ord(text[i]):04x}' instead. {_where(i + 1)}"
            )
        kind = match.lastgroup
        if kind == "quote":
            quote = match.group()
            j = i + 1
            chars: list[str] = []
            while j < len(text) and text[j] != quote:
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= len(text):
                raise JqlError(
                    f"Error in the JQL Query: The quoted string '{text[i + 1 :]}' has not been "
                    f"completed. {_where(i + 1)}"
                )
            tokens.append(Token("string", "".join(chars), i + 1))
            i = j + 1
            continue
        if kind == "op":
            tokens.append(Token("op", match.group(), i + 1))
        elif kind == "punct":
            tokens.append(Token(match.group(), match.group(), i + 1))
        elif kind == "word":
            tokens.append(Token("word", match.group(), i + 1))
        i = match.end()
    tokens.append(Token("eof", "", len(text) + 1))
    return tokens


# -- syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operand:
    """One value of a clause: a literal (`text`, `quoted`), a function call, or EMPTY."""

    text: str
    position: int
    quoted: bool = False
    function: bool = False
    empty: bool = False


@dataclass(frozen=True)
class Clause:
    field: str
    position: int
    operator: str  # upper case: "=", "IN", "NOT IN", "IS NOT", ...
    operands: tuple[Operand, ...]
    is_list: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND", "OR", "NOT"
    parts: tuple[Node, ...]


Node = Clause | BoolOp


@dataclass(frozen=True)
class Sort:
    field: str
    position: int
    descending: bool


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.token.keyword in words

    def parse(self) -> tuple[Node | None, tuple[Sort, ...]]:
        where: Node | None = None
        if not (self.at_keyword("ORDER") or self.token.kind == "eof"):
            where = self.or_expr()
        sorts: tuple[Sort, ...] = ()
        if self.at_keyword("ORDER"):
            self.take()
            if not self.at_keyword("BY"):
                raise JqlError(
                    f"Error in the JQL Query: Expecting 'by' but got "
                    f"'{self.token.describe()}'. {_where(self.token.position)}"
                )
            self.take()
            sorts = self.sort_list()
        if self.token.kind != "eof":
            token = self.token
            if token.kind == ")":
                raise JqlError(
                    f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got ')'. "
                    f"{_where(token.position)}"
                )
            raise JqlError(
                f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                f"'{token.describe()}'. {_where(token.position)}"
            )
        return where, sorts

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.at_keyword("OR") or self.token.text == "||":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.at_keyword("AND") or self.token.text == "&&":
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def not_expr(self) -> Node:
        if self.at_keyword("NOT") or (self.token.kind == "op" and self.token.text == "!"):
            self.take()
            return BoolOp("NOT", (self.not_expr(),))
        if self.token.kind == "(":
            opening = self.take()
            inner = self.or_expr()
            if self.token.kind != ")":
                if self.token.kind == "eof":
                    raise JqlError(
                        "Error in the JQL Query: Expecting ')' before the end of the query. "
                        + _where(opening.position)
                    )
                raise JqlError(
                    f"Error in the JQL Query: Expecting ')' but got "
                    f"'{self.token.describe()}'. {_where(self.token.position)}"
                )
            self.take()
            return inner
        return self.clause()

    def clause(self) -> Clause:
        token = self.token
        if token.kind not in ("word", "string") or token.keyword in _RESERVED:
            if token.kind == "eof":
                raise JqlError(
                    "Error in the JQL Query: Expecting a field name but reached the end of the "
                    f"query. {_where(token.position)}"
                )
            raise JqlError(
                f"Error in the JQL Query: Expecting a field name but got "
                f"'{token.describe()}'. {_where(token.position)}"
            )
        self.take()
        operator = self.operator()
        if self.token.kind == "(":
            opening = self.take()
            operands = [self.value()]
            while self.token.kind == ",":
                self.take()
                operands.append(self.value())
            if self.token.kind != ")":
                raise JqlError(
                    f"Error in the JQL Query: Expecting ')' but got "
                    f"'{self.token.describe()}'. {_where(self.token.position or opening.position)}"
                )
            self.take()
            return Clause(token.text, token.position, operator, tuple(operands), True)
        return Clause(token.text, token.position, operator, (self.value(),), False)

    def operator(self) -> str:
        token = self.token
        if token.kind == "op" and token.text not in ("&&", "||", "!"):
            self.take()
            return token.text
        if token.keyword in ("IN", "IS"):
            self.take()
            if self.at_keyword("NOT") and token.keyword == "IS":
                self.take()
                return "IS NOT"
            return token.keyword
        if token.keyword == "NOT":
            self.take()
            if self.at_keyword("IN"):
                self.take()
                return "NOT IN"
        if token.keyword in ("WAS", "CHANGED"):
            raise JqlError(
                f"The operator '{token.keyword}' is not supported by this emulator. "
                f"{_where(token.position)}"
            )
        got = "the end of the query" if token.kind == "eof" else f"'{token.describe()}'"
        raise JqlError(
            f"Error in the JQL Query: Expecting operator but got {got}. The valid operators "
            f"are {_OPERATORS}. {_where(token.position)}"
        )

    def value(self) -> Operand:
        token = self.token
        if token.kind == "string":
            self.take()
            return Operand(token.text, token.position, quoted=True)
        if token.kind == "word" and token.keyword not in _RESERVED - {"EMPTY", "NULL"}:
            self.take()
            if token.keyword in ("EMPTY", "NULL"):
                return Operand(token.text, token.position, empty=True)
            if self.token.kind == "(":
                self.take()
                if self.token.kind != ")":
                    raise JqlError(
                        f"Error in the JQL Query: Expecting ')' but got "
                        f"'{self.token.describe()}'. {_where(self.token.position)}"
                    )
                self.take()
                return Operand(token.text, token.position, function=True)
            text = token.text
            return Operand(text, token.position)
        got = "EOF" if token.kind == "eof" else token.describe()
        raise JqlError(
            f"Error in the JQL Query: Expecting either a value, list or function but got "
            f"'{got}'. {_where(token.position)}"
        )

    def sort_list(self) -> tuple[Sort, ...]:
        sorts = [self.sort()]
        while self.token.kind == ",":
            self.take()
            sorts.append(self.sort())
        return tuple(sorts)

    def sort(self) -> Sort:
        token = self.token
        if token.kind not in ("word", "string") or token.keyword in _RESERVED:
            got = "EOF" if token.kind == "eof" else token.describe()
            raise JqlError(
                f"Error in the JQL Query: Expecting a field name but got '{got}'. "
                f"{_where(token.position)}"
            )
        self.take()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.take().keyword == "DESC"
        return Sort(token.text, token.position, descending)


_RESERVED = frozenset(
    {
        "AND",
        "OR",
        "NOT",
        "IN",
        "IS",
        "EMPTY",
        "NULL",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "WAS",
        "CHANGED",
    }
)


def parse(text: str) -> tuple[Node | None, tuple[Sort, ...]]:
    """The filter (None if there is none) and the ORDER BY of `text`; raises `JqlError`."""
    return _Parser(text).parse()
