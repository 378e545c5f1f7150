"""Customer traits: what an ``identify`` event may set, by name and type — declared once.

A trait is a named attribute of a customer (a plan, a company size, a sign-up time). Its value in a
profile is the *latest* one set: the ``identify`` with the greatest ``(event_time, offset)``, a
mergeable aggregate (``schemas.aggregates.latest``) that batch, speed and serving share. The event
contract (``schemas.events``) validates each value against its declaration here; an undeclared
trait or a value of the wrong type is a contract violation, so the record is dead-lettered with the
reason instead of reaching any view.

This module imports nothing from the rest of ``schemas`` (the event contract reads it, and the
catalog, which publishes it as :data:`~lambdalytics.schemas.catalog.TRAITS`, imports the contract).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_TRAIT_TEXT", "TRAITS", "TRAITS_BY_NAME", "Trait", "TraitType", "value_text"]

TraitType = Literal["string", "number", "timestamp"]
MAX_TRAIT_TEXT = 256
"""Longest string trait value (characters): a trait names a segment, it is not a document."""


class Trait(BaseModel):
    """One declared trait. ``timestamp`` values are stored as UTC epoch ms, like ``event_time``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: TraitType
    label: str = Field(min_length=1)
    description: str

    def value(self, text: str) -> str | int | float:
        """A stored value text (:func:`value_text`) → the value: a string, a number, epoch ms."""
        return text if self.type == "string" else orjson.loads(text)


TRAITS: tuple[Trait, ...] = (
    Trait(name="plan", type="string", label="Plan", description="The customer's subscription plan."),
    Trait(
        name="company_size",
        type="number",
        label="Company size",
        description="Employees of the customer's company.",
    ),
    Trait(
        name="signed_up_at",
        type="timestamp",
        label="Signed up",
        description="When the customer signed up (UTC).",
    ),
)
TRAITS_BY_NAME: dict[str, Trait] = {t.name: t for t in TRAITS}


def value_text(value: Any) -> str:
    """How views and speed state hold a validated trait value: the string itself, else its JSON text.

    The same text Spark reads out of the row's ``traits`` JSON (``FROM_JSON(..., MAP<STRING, STRING>)``
    gives a number's text as written, and the row was written by orjson), so both sides agree."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
