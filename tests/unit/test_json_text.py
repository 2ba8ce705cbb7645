"""The fast indented JSON of `results --json` is `json.dumps(indent=2)`'s text exactly."""

from __future__ import annotations

import json
import math
import random

from bxthre3.client.json_text import dumps_indented
from bxthre3.commands.dag_results import _json_default


def _value(rng: random.Random, depth: int) -> object:
    kinds = ["str", "int", "float", "bool", "none", "bytes"] + (["list", "tuple", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(["", "plain", 'ünï\u2028\x1b[2J"\\', "漢字", "\ud800", "tab\tnl\n"])
    if kind == "int":
        return rng.choice([0, -1, 7, 2**70])
    if kind == "float":
        return rng.choice([0.0, -0.5, 1e300, 1 / 3, math.inf, -math.inf, math.nan, 12.0])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "none":
        return None
    if kind == "bytes":
        return rng.choice([b"", b"text\n", b"\xff\x00binary"])
    items = [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    return {f"k{i}\u00e9": item for i, item in enumerate(items)}


def test_the_same_text_as_json_dumps_for_results_like_values() -> None:
    rng = random.Random(22)
    for _ in range(500):
        value = {"dag_id": "d", "tasks": [_value(rng, 0) for _ in range(rng.randrange(5))], "x": _value(rng, 0)}
        assert dumps_indented(value, _json_default) == json.dumps(value, indent=2, default=_json_default)


def test_a_key_that_is_not_a_string_is_left_to_json_dumps() -> None:
    value = {"a": [{1: "one", None: 2, 2.5: True}], "b": {}}
    assert dumps_indented(value, _json_default) == json.dumps(value, indent=2, default=_json_default)
