"""Dataset and model references: a version number beyond what the store holds is a clear error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml._names import MAX_VERSION
from loopml.data._refs import parse_ref
from loopml.errors import InvalidParameter
from loopml.registry._refs import parse_model_ref


@given(st.integers(min_value=1, max_value=MAX_VERSION))
def test_every_storable_version_parses(number: int) -> None:
    assert parse_ref(f"credit:{number}").version == number


@pytest.mark.parametrize("digits", [str(MAX_VERSION + 1), "9" * 23, "1" * 5000])
def test_a_version_too_large_for_the_store_names_the_limit(digits: str) -> None:
    with pytest.raises(InvalidParameter, match=f"too large: at most {MAX_VERSION}"):
        parse_ref(f"credit:{digits}")


@pytest.mark.parametrize("form", ["credit/{}", "models:/credit/{}"])
def test_a_model_version_too_large_for_the_store_names_the_limit(form: str) -> None:
    assert parse_model_ref(form.format(MAX_VERSION)).version == MAX_VERSION
    with pytest.raises(InvalidParameter, match=f"too large: at most {MAX_VERSION}"):
        parse_model_ref(form.format("9" * 23))
