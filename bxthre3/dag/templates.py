"""`${...}` in DAG files: params and for_each names substituted into strings. Pure: no I/O, no YAML.

A template is text with `${EXPR}` holes; `$${` writes a literal `${`, any other `$` is itself.
EXPR is a name (a param or a for_each name: its value, as text) or whole-number arithmetic over
names and numbers: `+ - * / %` (`/` divides rounding down, like Python's `//`), parentheses,
unary minus, `min(a, b, ...)` and `max(a, b, ...)`. `${c * width / cols}` with c=1, width=512,
cols=4 is "128". Nothing is evaluated by Python: the parser below knows only these forms.

Errors are :class:`TemplateError` with a message that says what to write instead; the loader
adds the file, line, task and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Union

from bxthre3.dag.fields import did_you_mean

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A param or for_each name."""

MAX_EXPR_DEPTH = 16
"""Deepest nesting of parentheses and function calls in one `${...}`."""

MAX_NUMBER_DIGITS = 30
"""Longest whole number arithmetic accepts or produces (keeps `${9**...}`-style blowups out)."""


class TemplateError(ValueError):
    """A `${...}` that cannot be read or evaluated; the message says what fixes it."""


# An expression tree: a name, a number, or (operator, operands...).
_Expr = Union[str, int, tuple]  # noqa: UP007  (a recursive alias mypy reads as written)
_Part = Union[str, "_Hole"]  # noqa: UP007


class _Hole:
    """One `${...}`: its source text and its parsed tree."""

    __slots__ = ("text", "tree")

    def __init__(self, text: str, tree: _Expr) -> None:
        self.text = text
        self.tree = tree


def substitute(text: str, scope: Mapping[str, str]) -> str:
    """`text` with every `${...}` replaced by its value in `scope`, and `$${` by `${`."""
    if "$" not in text:
        return text
    parts = _compile(text)
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part.tree, str):  # a bare name: its value as written
            out.append(_lookup(part.tree, scope, part.text))
        else:
            out.append(str(_evaluate(part.tree, scope, part.text)))
    return "".join(out)


def names_in(text: str) -> list[str]:
    """Every name the `${...}` holes of `text` use, in order (raises TemplateError on bad syntax)."""
    if "$" not in text:
        return []
    found: list[str] = []
    for part in _compile(text):
        if not isinstance(part, str):
            _collect(part.tree, found)
    return found


def evaluate_whole(text: str, scope: Mapping[str, str], what: str) -> int:
    """`text` (a number or a template) as a whole number; `what` names it in the message."""
    value = substitute(text, scope).strip()
    try:
        return _to_int(value)
    except ValueError:
        raise TemplateError(f"{what} must be a whole number, not {value!r}") from None


def _collect(tree: _Expr, found: list[str]) -> None:
    if isinstance(tree, str):
        found.append(tree)
    elif isinstance(tree, tuple):
        for operand in tree[1:]:
            _collect(operand, found)


def _lookup(name: str, scope: Mapping[str, str], hole: str) -> str:
    value = scope.get(name)
    if value is None:
        known = sorted(scope)
        shown = ", ".join(known) if known else "none"
        raise TemplateError(
            f"unknown name {name!r} in {hole!r}{did_you_mean(name, known)}: declare it under params: "
            f"(known here: {shown}), or write $${{ for a literal ${{"
        )
    return value


def _to_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS + 1:
        raise ValueError(text)
    return int(text, 10)


def _evaluate(tree: _Expr, scope: Mapping[str, str], hole: str) -> int:
    if isinstance(tree, int):
        return tree
    if isinstance(tree, str):
        value = _lookup(tree, scope, hole)
        try:
            return _to_int(value.strip())
        except ValueError:
            raise TemplateError(
                f"{tree!r} is {value!r}, not a whole number, so {hole!r} cannot compute with it"
            ) from None
    op, *operands = tree
    values = [_evaluate(o, scope, hole) for o in operands]
    if op == "neg":
        result = -values[0]
    elif op == "min":
        result = min(values)
    elif op == "max":
        result = max(values)
    elif op == "+":
        result = values[0] + values[1]
    elif op == "-":
        result = values[0] - values[1]
    elif op == "*":
        result = values[0] * values[1]
    else:  # "/" or "%"
        if values[1] == 0:
            raise TemplateError(f"{hole!r} divides by zero")
        result = values[0] // values[1] if op == "/" else values[0] % values[1]
    if len(str(abs(result))) > MAX_NUMBER_DIGITS:
        raise TemplateError(f"{hole!r} is over {MAX_NUMBER_DIGITS} digits")
    return result


@lru_cache(maxsize=4096)
def _compile(text: str) -> tuple[_Part, ...]:
    """Split `text` into literal pieces and holes (cached: a for_each task repeats its strings)."""
    parts: list[_Part] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:j])
        if text.startswith("$${", j):
            literal.append("${")
            i = j + 3
        elif text.startswith("${", j):
            end = text.find("}", j + 2)
            if end < 0:
                raise TemplateError(
                    f'unclosed "${{" in {text!r}: end it with "}}", or write "$${{" for a literal "${{"'
                )
            hole = text[j : end + 1]
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Hole(hole, _Parser(text[j + 2 : end], hole).parse()))
            i = end + 1
        else:
            literal.append("$")
            i = j + 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")


class _Parser:
    """Recursive descent over `expr := term (('+'|'-') term)*`, `term := unary (('*'|'/'|'%') unary)*`,
    `unary := '-' unary | NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'`."""

    def __init__(self, source: str, hole: str) -> None:
        self.hole = hole
        self.tokens: list[tuple[str, str]] = []
        for m in _TOKEN.finditer(source):
            number, name, other = m.groups()
            if number is not None:
                self.tokens.append(("num", number))
            elif name is not None:
                self.tokens.append(("name", name))
            elif other is not None and not other.isspace():
                self.tokens.append(("op", other))
        self.at = 0
        self.depth = 0

    def fail(self, problem: str) -> TemplateError:
        return TemplateError(
            f"cannot read {self.hole!r}: {problem}; write a name like ${{size}} or whole-number arithmetic "
            f'like ${{c * size / cols}} (+ - * / % min max), or "$${{" for a literal "${{"'
        )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, op: str) -> bool:
        token = self.peek()
        if token == ("op", op):
            self.at += 1
            return True
        return False

    def parse(self) -> _Expr:
        if not self.tokens:
            raise self.fail("it is empty")
        tree = self.expr()
        token = self.peek()
        if token is not None:
            raise self.fail(f"unexpected {token[1]!r}")
        return tree

    def expr(self) -> _Expr:
        self.depth += 1
        if self.depth > MAX_EXPR_DEPTH:
            raise self.fail(f"nested deeper than {MAX_EXPR_DEPTH} levels")
        tree = self.term()
        while True:
            token = self.peek()
            if token in (("op", "+"), ("op", "-")):
                self.at += 1
                tree = (token[1], tree, self.term())  # type: ignore[index]
            else:
                break
        self.depth -= 1
        return tree

    def term(self) -> _Expr:
        tree = self.unary()
        while True:
            token = self.peek()
            if token in (("op", "*"), ("op", "/"), ("op", "%")):
                self.at += 1
                tree = (token[1], tree, self.unary())  # type: ignore[index]
            else:
                return tree

    def unary(self) -> _Expr:
        token = self.peek()
        if token is None:
            raise self.fail("it ends too early")
        self.at += 1
        kind, value = token
        if kind == "op" and value == "-":
            return ("neg", self.unary())
        if kind == "num":
            if len(value) > MAX_NUMBER_DIGITS:
                raise self.fail(f"{value} is over {MAX_NUMBER_DIGITS} digits")
            return int(value)
        if kind == "name":
            if value in ("min", "max") and self.take("("):
                args = [self.expr()]
                while self.take(","):
                    args.append(self.expr())
                if not self.take(")"):
                    raise self.fail(f"{value}( has no closing ')'")
                return (value, *args)
            return value
        if kind == "op" and value == "(":
            tree = self.expr()
            if not self.take(")"):
                raise self.fail("'(' has no closing ')'")
            return tree
        raise self.fail(f"unexpected {value!r}")
