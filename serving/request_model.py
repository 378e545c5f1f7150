"""The base of every JSON request body: unknown keys are refused, and so is text Python can hold but
cannot store or sign.

JSON may escape a lone UTF-16 surrogate (``"\\ud800"``); ``json.loads`` turns it into a Python string
that SQLite, PyJWT and every UTF-8 encoder then refuse — a 500 after validation passed. Refusing it at
validation makes it the 422 it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["RequestModel"]


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if _has_lone_surrogate(data):
            raise ValueError("text holds an unpaired UTF-16 surrogate (not valid Unicode)")
        return data
