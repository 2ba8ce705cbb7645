"""docs/protocol.md's message tables against the message classes of `bxthre3/wire/protocol.py`.

protocol.md is the spec other implementations are written from, and a newcomer reads it before the code:
a field listed in the wrong order, with the wrong type or without the default the decoder fills in would
make a peer that follows the spec send malformed frames (or refuse valid ones). So every kind's field list
is parsed out of the tables and compared with `dataclasses.fields` — names, order, types and defaults.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

from bxthre3.wire import protocol

SPEC = Path(__file__).parents[2] / "docs" / "protocol.md"

WIRE_TYPES = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "bytes": "bin",
    "list[str]": "[str]",
    "list[int]": "[int]",
    "list[bytes]": "[bin]",
    "dict[str, Any]": "map",
    "dict[str, bytes]": "{str: bin}",
    "int | None": "int|nil",
    "str | None": "str|nil",
    "list[AttemptRef]": "[[dag_id: str, task_id: str, attempt: int]]",
}
"""How protocol.md writes each annotation of protocol.py (msgpack's names: `bin`, `map`, `nil`)."""

_WIRE_LITERALS = {"true": True, "false": False, "nil": None}


def _split_top_level(text: str, sep: str) -> list[str]:
    """`text` cut at each `sep` outside brackets and braces (a field's type may hold commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _parse_default(text: str) -> Any:
    """A default as protocol.md writes it: msgpack's `true`/`false`/`nil`, else a Python literal."""
    return _WIRE_LITERALS[text] if text in _WIRE_LITERALS else ast.literal_eval(text)


def _parse_fields(cell: str) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(name, type, (default,) or ()) per field of a table's fields cell (`—`: no fields)."""
    if cell.strip() == "—":
        return []
    code = re.match(r"`([^`]*)`", cell.strip())
    assert code, f"a fields cell that does not start with a code span: {cell!r}"
    fields = []
    for part in _split_top_level(code.group(1), ","):
        name, _, rest = part.partition(":")
        type_text, eq, default = rest.partition("=")
        fields.append((name.strip(), type_text.strip(), (_parse_default(default.strip()),) if eq else ()))
    return fields


def documented_kinds(spec: str) -> dict[str, list[list[tuple[str, str, tuple[Any, ...]]]]]:
    """Every row of protocol.md's `| kind | fields | meaning |` tables: kind -> its field lists, in order."""
    rows: dict[str, list[list[tuple[str, str, tuple[Any, ...]]]]] = {}
    in_table = False
    for line in spec.splitlines():
        if line.startswith("| kind | fields |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        if not in_table or line.startswith("|---"):
            continue
        cells = [c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        kind = cells[0].strip("`")
        rows.setdefault(kind, []).append(_parse_fields(cells[1]))
    return rows


def declared_fields(cls: type[protocol.Message]) -> list[tuple[str, str, tuple[Any, ...]]]:
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: tuple[Any, ...] = (f.default,)
        elif f.default_factory is not dataclasses.MISSING:
            default = (f.default_factory(),)
        else:
            default = ()
        out.append((f.name, WIRE_TYPES[str(f.type)], default))
    return out


def _same_default(doc: tuple[Any, ...], code: tuple[Any, ...]) -> bool:
    # 0 == 0.0 is fine (a float may travel as an integer), but `true` is not the integer 1.
    return doc == code and all(type(d) is bool or type(c) is not bool for d, c in zip(doc, code, strict=True))


def test_every_kind_has_exactly_its_fields_in_protocol_md() -> None:
    rows = documented_kinds(SPEC.read_text())
    assert set(rows) == set(protocol._KINDS), "protocol.md's tables and protocol._KINDS name different kinds"
    for kind, cls in protocol._KINDS.items():
        want = declared_fields(cls)
        first, *more = rows[kind]
        assert [(n, t) for n, t, _ in first] == [(n, t) for n, t, _ in want], f"{kind}: fields or their types"
        for (name, _, doc), (_, _, code) in zip(first, want, strict=True):
            assert _same_default(doc, code), f"{kind}.{name}: protocol.md says default {doc}, the code {code}"
        for subset in more:  # a kind listed again (heartbeat, both ways) names the fields used that way
            by_name = {n: t for n, t, _ in want}
            assert all(by_name.get(n) == t for n, t, _ in subset), f"{kind}: second row {subset}"
            assert [n for n, _, _ in subset] == [n for n, _, _ in want if n in {s[0] for s in subset}]


def test_the_parser_sees_what_is_written() -> None:
    """The check above is only as good as its reading of a row: pin it on the hardest shapes."""
    row = "| `x` | `a: int\\|nil, h: [[dag_id: str, task_id: str, attempt: int]] = [], o: bool = true` | m |"
    assert documented_kinds(f"| kind | fields | meaning |\n|---|---|---|\n{row}\n") == {
        "x": [[("a", "int|nil", ()), ("h", WIRE_TYPES["list[AttemptRef]"], ([],)), ("o", "bool", (True,))]]
    }
    assert not _same_default((1,), (True,))


def test_security_md_names_every_kind_whose_frames_may_be_large() -> None:
    """SECURITY.md's limits table says which kinds escape the 1 MiB cap on commands; the decoder decides."""
    security = (Path(__file__).parents[2] / "docs" / "SECURITY.md").read_text()
    row = next(line for line in security.splitlines() if line.startswith("| frame size of a command"))
    assert sorted(k for k in protocol._KINDS if re.search(rf"\b{k}\b", row.split("|")[3])) == sorted(
        protocol._BULK_KINDS
    )
