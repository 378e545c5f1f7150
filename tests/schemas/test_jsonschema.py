"""The checked-in JSON Schemas are current and agree with the pydantic contracts on examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from lambdalytics.schemas.events import MODEL_BY_FAMILY, ContractViolation, family_of, validate_event

from .test_events import VALID, ev

pytestmark = pytest.mark.unit
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema"


@pytest.mark.parametrize("family", list(MODEL_BY_FAMILY), ids=str)
def test_checked_in_schema_is_current(family):
    on_disk = json.loads((SCHEMA_DIR / f"{family.value}.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(MODEL_BY_FAMILY[family].model_json_schema_with_rules())), (
        "stale JSON Schema: run `lambdalytics schemas export`"
    )


INVALID_BY_RULE = [
    ev(event_type="ad_click"),  # campaign_id required
    ev(event_type="page_view", cost=1),  # cost only on ad_*
    ev(event_type="order_paid", order_id="o", currency="EUR"),  # amount required
    ev(event_type="csat_submitted", ticket_id="t"),  # score required
    ev(event_type="ticket_opened", ticket_id="t", score=2),  # score only on csat
    ev(event_type="page_view", extra=1),  # unknown field
]


@pytest.mark.parametrize("obj", VALID + INVALID_BY_RULE)
def test_json_schema_and_pydantic_agree(obj):
    family = family_of(obj["event_type"])
    schema = json.loads((SCHEMA_DIR / f"{family.value}.schema.json").read_text())
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(obj)
    try:
        validate_event(obj)
        pydantic_ok = True
    except ContractViolation:
        pydantic_ok = False
    assert schema_ok == pydantic_ok
