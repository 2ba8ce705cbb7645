"""The result cache's key: equal inputs give equal keys, different inputs never the same one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bxthre3.scheduler.cache_key import cache_key

_ids = st.sampled_from(["a", "b", "tile_1"])
_sha = st.sampled_from(["a" * 64, "b" * 64, "0" * 63 + "1"])
_args = st.lists(st.text(max_size=6), max_size=4).map(tuple)
_parts = st.lists(st.binary(max_size=6), max_size=4).map(tuple)
_files = st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=4), st.binary(max_size=6), max_size=3))
_memory = st.one_of(st.none(), st.integers(min_value=0, max_value=4096))
_inputs = st.tuples(_ids, _sha, _args, _parts, _files, _memory, st.booleans())


def _canonical(inputs: tuple) -> tuple:
    """What the key must tell apart: no files and an empty `/in` are the same thing."""
    task_id, sha, args, parts, files, memory, deterministic = inputs
    return (task_id, sha, args, parts, tuple(sorted((files or {}).items())), memory, deterministic)


@given(_inputs, _inputs)
def test_different_inputs_never_share_a_key(a: tuple, b: tuple) -> None:
    if _canonical(a) == _canonical(b):
        assert cache_key(*a) == cache_key(*b)
    else:
        assert cache_key(*a) != cache_key(*b)


@given(_inputs)
def test_the_same_inputs_always_give_the_same_key(a: tuple) -> None:
    task_id, sha, args, parts, files, memory, deterministic = a
    shuffled = dict(reversed(list((files or {}).items()))) or files
    again = (task_id, sha, tuple(args), tuple(bytes(p) for p in parts), shuffled, memory, deterministic)
    assert cache_key(*a) == cache_key(*again)


def test_boundaries_between_parts_matter() -> None:
    """Moving bytes from one part to the next (stdin parts, argv and stdin, id and module) changes the key."""
    sha = "a" * 64

    def key(*a: object, task_id: str = "t", module: str = sha) -> str:
        return cache_key(task_id, module, *a)  # type: ignore[arg-type]

    assert key((), (b"ab", b"c"), None, None, False) != key((), (b"a", b"bc"), None, None, False)
    assert key(("x",), (), None, None, False) != key((), (b"x",), None, None, False)
    assert key((), (), None, None, False) != key((), (b"",), None, None, False)
    assert key((), (), None, None, False) != key((), (), None, None, True)
    assert key((), (), None, None, False) != key((), (), None, 0, False)
    assert key((), (), None, None, False) != key((), (), None, None, False, task_id="u")
    assert key((), (), None, None, False, task_id="ta", module=sha[1:]) != key((), (), None, None, False)
