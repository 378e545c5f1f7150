"""The batch ⇄ serving contract: the cut rule never splits a block, the codec round-trips, views follow the catalog."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalytics.schemas.catalog import CATALOG, Grain
from lambdalytics.schemas.views import (
    CUSTOMER_PROFILE,
    DERIVED_VIEWS,
    EVENT_VIEWS,
    VIEWS,
    at_or_above,
    block_of,
    cut,
    decode_offsets,
    encode_offsets,
)

pytestmark = pytest.mark.unit
offsets = st.dictionaries(
    st.tuples(st.sampled_from(["events.behavioral", "events.transaction"]), st.integers(0, 5)),
    st.integers(0, 10**12),
    max_size=6,
)


@given(archived=offsets, block_size=st.integers(1, 5000), probe=st.integers(0, 10**12))
def test_a_cut_is_the_last_block_start_and_every_offset_is_on_exactly_one_side(archived, block_size, probe):
    w = cut(archived, block_size)
    assert w.keys() == archived.keys()
    for tp, offset in archived.items():
        assert w[tp] % block_size == 0 and offset - block_size < w[tp] <= offset
        # the batch covers probe < W; the speed side answers for whole blocks at or above W
        assert (probe < w[tp]) != at_or_above(block_of(probe, block_size), w[tp], block_size)


@given(archived=offsets)
def test_the_watermark_codec_round_trips(archived):
    assert decode_offsets(encode_offsets(archived)) == archived


def test_views_are_unique_keyed_by_tenant_first_and_follow_the_catalog():
    assert len(VIEWS) == len(EVENT_VIEWS) + len(DERIVED_VIEWS)
    assert all(v.keys[0] == "tenant_id" and not set(v.keys) & set(v.values) for v in VIEWS.values())
    assert CUSTOMER_PROFILE.values == tuple(m.name for m in CATALOG.bases(Grain.customer))
    assert all(v.recompute_by is not None for v in EVENT_VIEWS)
    assert all(v.recompute_by is None for v in DERIVED_VIEWS)
    assert {f"{e.name}_state" for e in CATALOG.entities} <= VIEWS.keys()
