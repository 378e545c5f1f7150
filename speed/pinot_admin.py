"""Create or update the Pinot schema and REALTIME table of every event topic (``lambdalytics pinot apply``).

The declarative files live in ``infra/pinot/``: one schema and one table config, templated with
``${TABLE}``, ``${TOPIC}`` and ``${KAFKA_BOOTSTRAP}``, applied once per event topic under the table names
of :data:`~lambdalytics.speed.config.TABLE_BY_TOPIC`. Applying is idempotent: the schema is posted with
``override=true`` and an existing table is updated with ``PUT /tables/{name}``.

The broker list is the address *Pinot's servers* use to reach Kafka, which is not always the one this
machine uses (in Docker it is usually the Kafka container's network alias, e.g. ``kafka:9092``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import httpx

from .config import TABLE_BY_TOPIC

__all__ = ["PinotAdminError", "apply", "check", "schema_for", "table_config_for"]

_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
_START_HINT = (
    "start one with `docker run -p 9000:9000 -p 8000:8000 -e JAVA_OPTS='-Xms1G -Xmx2G' "
    "apachepinot/pinot:1.4.0 QuickStart -type EMPTY`, or pass the URL of yours"
)


class PinotAdminError(RuntimeError):
    """The controller refused or could not be reached; the message says what it answered and the fix."""


def _template(name: str) -> Any:
    return json.loads((files("lambdalytics.infra") / "pinot" / name).read_text(encoding="utf-8"))


def _render(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, values) for v in node]
    if isinstance(node, str):

        def substitute(match: re.Match) -> str:
            if match.group(1) not in values:
                raise KeyError(f"infra/pinot: no value for placeholder ${{{match.group(1)}}}")
            return values[match.group(1)]

        return _PLACEHOLDER.sub(substitute, node)
    return node


def schema_for(table: str) -> dict[str, Any]:
    """The Pinot schema of one events table (Pinot finds a table's schema by the table's name)."""
    return _render(_template("events.schema.json"), {"TABLE": table})


def table_config_for(table: str, topic: str, kafka_bootstrap: str) -> dict[str, Any]:
    """The REALTIME table config consuming ``topic`` from ``kafka_bootstrap``."""
    if not kafka_bootstrap or any(c.isspace() for c in kafka_bootstrap):
        raise ValueError(f"kafka_bootstrap must be host:port[,host:port...], got {kafka_bootstrap!r}")
    return _render(
        _template("events.table.json"), {"TABLE": table, "TOPIC": topic, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    )


def _message(response: httpx.Response) -> str:
    """The controller's own words: ``{"code": 400, "error": "..."}`` or ``{"status": "..."}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("error") or body.get("status") or body)[:500]
    return str(body)[:500]


def _send(client: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise PinotAdminError(
            f"{what}: cannot reach the Pinot controller ({exc.__class__.__name__}: {exc}); {_START_HINT}"
        ) from exc


def _expect_ok(response: httpx.Response, what: str) -> str:
    if response.is_success:
        return _message(response)
    hint = ""
    if response.status_code == 400 and "backward" in _message(response).lower():
        hint = " (an incompatible schema change: drop the table and schema, or migrate by hand)"
    raise PinotAdminError(
        f"{what} failed: HTTP {response.status_code} from {response.request.method} {response.request.url}: "
        f"{_message(response)}{hint}"
    )


def apply(
    controller_url: str,
    kafka_bootstrap: str,
    *,
    client: httpx.Client | None = None,
    tables: Mapping[str, str] | None = None,
) -> list[str]:
    """Create or update the schema and REALTIME table of each event topic; one line per action done.

    ``POST /schemas?override=true``, then ``POST /tables``; a table that exists (409) is updated with
    ``PUT /tables/{name}``. Any other answer raises :class:`PinotAdminError` with the controller's message.
    ``tables`` (topic -> table) defaults to :data:`TABLE_BY_TOPIC`, as ``PinotConfig.tables`` does.
    """
    base = controller_url.rstrip("/")
    own = client is None
    client = client or httpx.Client(timeout=30.0)
    done: list[str] = []
    try:
        for topic, table in (tables or TABLE_BY_TOPIC).items():
            schema = schema_for(table)
            what = f"schema {table}"
            response = _send(
                client, "POST", f"{base}/schemas", what, params={"override": "true"}, json=schema
            )
            done.append(f"{what}: {_expect_ok(response, what)}")

            config = table_config_for(table, topic, kafka_bootstrap)
            what = f"table {table} ({topic})"
            response = _send(client, "POST", f"{base}/tables", what, json=config)
            if response.status_code == 409:
                response = _send(client, "PUT", f"{base}/tables/{table}", what, json=config)
                done.append(f"{what}: updated: {_expect_ok(response, what + ' update')}")
            else:
                done.append(f"{what}: created: {_expect_ok(response, what)}")
    finally:
        if own:
            client.close()
    return done


def check(controller_url: str, *, client: httpx.Client | None = None) -> str:
    """Precheck: the controller answers ``GET /health``. Raises :class:`PinotAdminError` saying the fix."""
    base = controller_url.rstrip("/")
    own = client is None
    client = client or httpx.Client(timeout=5.0)
    try:
        response = _send(client, "GET", f"{base}/health", f"Pinot controller at {base}")
        if not response.is_success:
            raise PinotAdminError(
                f"Pinot controller at {base} is not healthy: HTTP {response.status_code}: {_message(response)}; "
                "wait until it has started (tens of seconds), or check its log"
            )
        return f"Pinot controller at {base}: {response.text.strip() or 'OK'}"
    finally:
        if own:
            client.close()
