"""`backends.opening`: what `--backend` accepts, and the one-line errors for what it does not."""

from __future__ import annotations

import pytest

from bxthre3.backends.opening import BackendURL, parse_backend
from bxthre3.common.errors import Bxthre3Error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dask:local", BackendURL("dask", None, "local", "dask:local")),
        ("dask://10.0.0.5:8786", BackendURL("dask", "10.0.0.5:8786", "remote", "dask://10.0.0.5:8786")),
        (
            "dask://scheduler.lan:8786/",
            BackendURL("dask", "scheduler.lan:8786", "remote", "dask://scheduler.lan:8786/"),
        ),
        ("ray://[::1]:10001", BackendURL("ray", "[::1]:10001", "remote", "ray://[::1]:10001")),
        ("ray:auto", BackendURL("ray", None, "auto", "ray:auto")),
        (" ray:local ", BackendURL("ray", None, "local", "ray:local")),
    ],
)
def test_the_accepted_forms(text: str, expected: BackendURL) -> None:
    assert parse_backend(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("spark://x:7077", "not a backend; use dask://HOST:PORT"),
        ("dask", "not a backend"),
        ("dask:auto", "use dask://HOST:PORT"),
        ("dask://10.0.0.5", "the address must be HOST:PORT (e.g. dask://10.0.0.5:8786)"),
        ("ray://host:0", "the address must be HOST:PORT"),
        ("ray://host:99999", "the address must be HOST:PORT"),
        ("dask://:8786", "the address must be HOST:PORT"),
    ],
)
def test_anything_else_is_one_line_naming_the_forms(text: str, says: str) -> None:
    with pytest.raises(Bxthre3Error) as caught:
        parse_backend(text)
    assert says in str(caught.value) and "\n" not in str(caught.value)
