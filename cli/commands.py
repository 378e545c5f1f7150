"""The ``lambdalytics`` command: thin commands over the library (typer + rich)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from lambdalytics.infra.client_logs import condense_client_errors
from lambdalytics.infra.kafka_io import EventProducer, SendSummary, ensure_topics
from lambdalytics.infra.runtime import NoBrokerError, find_bootstrap, running_broker
from lambdalytics.infra.settings import get_settings
from lambdalytics.schemas.events import MODEL_BY_FAMILY, ContractViolation, parse_utc_ms, validate_event

from .sources.generator import TENANTS, GeneratorConfig, generate
from .sources.pacing import send_paced

app = typer.Typer(
    help="Lambdalytics: exact, fresh, tenant-safe customer-facing analytics.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schemas_app = typer.Typer(help="Event contracts.", no_args_is_help=True)
replay_app = typer.Typer(help="Replay a real public dataset as events.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(replay_app, name="replay")
batch_app = typer.Typer(help="Batch layer: Spark views over the master dataset.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
console = Console(stderr=True)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "jsonschema"


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    condense_client_errors()
    # SIGTERM unwinds like Ctrl-C, so brokers stop and run files are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _bootstrap() -> str:
    try:
        return find_bootstrap(get_settings())
    except NoBrokerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _print_summary(summary: SendSummary, elapsed: float) -> None:
    table = Table(
        title=f"sent {summary.total_sent:,}, rejected {summary.total_rejected:,} in {elapsed:,.1f}s"
    )
    table.add_column("topic")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    for topic, n in sorted(summary.sent.items()):
        table.add_row(topic, "sent", f"{n:,}")
    for (topic, reason), n in sorted(summary.rejected.items()):
        table.add_row(topic, f"dead-lettered: {reason}", f"{n:,}")
    console.print(table)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Stream demo events from the generator.")] = True,
    rate: Annotated[float, typer.Option(help="Demo stories per second.")] = 20.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run the pipeline on this machine (embedded broker unless LAMBDALYTICS_KAFKA_BOOTSTRAP is set)."""
    from .up import run_up

    raise typer.Exit(run_up(get_settings(), demo=demo, rate=rate, duration_s=duration))


@app.command()
def serve(
    embedded: Annotated[
        bool | None,
        typer.Option("--embedded/--pinot", help="Speed store (default: LAMBDALYTICS_SPEED_STORE)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="API worker processes (each keeps its own embedded store).")
    ] = 1,
) -> None:
    """Serve the API (batch ⊕ speed) on LAMBDALYTICS_API_HOST:PORT with granian."""
    from granian import Granian

    settings = get_settings()
    if embedded is not None:
        settings = settings.model_copy(update={"speed_store": "embedded" if embedded else "pinot"})
        os.environ["LAMBDALYTICS_SPEED_STORE"] = settings.speed_store  # the workers read the environment
    if settings.speed_store == "embedded":
        _bootstrap()  # fail early, with the explanation, when there is no Kafka
    factory = "create_embedded_app" if settings.speed_store == "embedded" else "create_pinot_app"
    Granian(
        f"lambdalytics.cli.serve:{factory}",
        factory=True,
        interface="asgi",
        address=settings.api_host,
        port=settings.api_port,
        workers=workers,
        log_access=False,
    ).serve()


pinot_app = typer.Typer(help="Apache Pinot speed store.", no_args_is_help=True)
app.add_typer(pinot_app, name="pinot")


@pinot_app.command("apply")
def pinot_apply() -> None:
    """Create or update the Pinot schemas and REALTIME tables through the controller REST API."""
    from lambdalytics.speed.pinot_admin import PinotAdminError, apply, check

    settings = get_settings()
    try:
        check(settings.pinot_controller_url)
        for line in apply(settings.pinot_controller_url, _bootstrap()):
            console.print(line)
    except PinotAdminError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command()
def broker() -> None:
    """Run the embedded Kafka-protocol broker (Tansu) in the foreground, topics created."""
    from lambdalytics.batch.master import master_path

    settings = get_settings()
    with running_broker(settings, master_exists=master_path(settings.data_dir).exists()) as bootstrap:
        counts = ensure_topics(bootstrap, settings.kafka_partitions)
        console.print(
            f"[bold green]Kafka broker[/] at [bold]{bootstrap}[/] topics {counts}. Ctrl-C stops it."
        )
        print(bootstrap, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command()
def topics() -> None:
    """Create the event and dead-letter topics where missing; print partition counts."""
    settings = get_settings()
    counts = ensure_topics(_bootstrap(), settings.kafka_partitions)
    print(json.dumps(counts, indent=2))


@app.command("generate")
def generate_cmd(
    rate: Annotated[float, typer.Option(help="Stories started per second of event time.")] = 50.0,
    duration: Annotated[float, typer.Option(help="Seconds of event time to generate.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Same seed, same events.")] = 42,
    duplicates: Annotated[float, typer.Option(help="Fraction of events sent twice.")] = 0.01,
    late: Annotated[float, typer.Option(help="Fraction of stories with old event_time.")] = 0.02,
    customers: Annotated[int, typer.Option(help="Customers per tenant.")] = 1000,
    tenant: Annotated[
        list[str] | None, typer.Option(help=f"Tenants to generate (default all: {TENANTS}).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Event time of the start, RFC 3339 (default: now).")
    ] = None,
    realtime: Annotated[
        bool, typer.Option(help="Pace sending by event time (else as fast as possible).")
    ] = False,
    jsonl: Annotated[
        Path | None, typer.Option(help="Write JSON lines here instead of sending to Kafka.")
    ] = None,
) -> None:
    """Synthetic tenants for the three user stories (food delivery, ad network, SaaS)."""
    start_ms = parse_utc_ms(start) if start else int(time.time() * 1000)
    try:
        cfg = GeneratorConfig(
            seed=seed,
            rate=rate,
            duration_s=duration,
            start_ms=start_ms,
            duplicates=duplicates,
            late=late,
            customers_per_tenant=customers,
            tenants=tuple(tenant or TENANTS),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    events = generate(cfg)
    if jsonl:
        n = 0
        with jsonl.open("wb") as fh:
            for event in events:
                fh.write(orjson.dumps(event) + b"\n")
                n += 1
        console.print(f"wrote {n:,} events to {jsonl}")
        return
    started = time.monotonic()
    with EventProducer(_bootstrap()) as producer:
        summary = send_paced(
            events, producer, speedup=1.0 if realtime else None, total=None, description="generate"
        )
    _print_summary(summary, time.monotonic() - started)


@replay_app.command("olist")
def replay_olist(
    path: Annotated[
        Path, typer.Option(help="Folder with the Olist CSV (or Parquet) files.", exists=True, file_okay=False)
    ],
    speedup: Annotated[float | None, typer.Option(help="Event-time seconds per wall second.")] = None,
) -> None:
    """Replay the Olist e-commerce dataset: sellers are tenants; orders, payments, deliveries, reviews."""
    from .sources import olist

    try:
        events, summary = olist.load_events(path)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(summary)
    _replay(events, speedup, "olist")


@replay_app.command("online-retail")
def replay_online_retail(
    path: Annotated[
        Path, typer.Option(help="online_retail.parquet, or the UCI CSV/XLSX.", exists=True, dir_okay=False)
    ],
    speedup: Annotated[float | None, typer.Option(help="Event-time seconds per wall second.")] = None,
    tenant_by: Annotated[str, typer.Option(help="none: one tenant; country: a tenant per country.")] = "none",
) -> None:
    """Replay UCI Online Retail (541,909 invoice lines) as transaction events."""
    from .sources import online_retail

    if tenant_by not in ("none", "country"):
        raise typer.BadParameter("--tenant-by must be none or country")
    mode: Literal["none", "country"] = "country" if tenant_by == "country" else "none"
    events, summary = online_retail.load_events(path, tenant_by=mode)
    console.print(summary)
    _replay(events, speedup, "online-retail")


def _replay(events: list[dict], speedup: float | None, name: str) -> None:
    started = time.monotonic()
    with EventProducer(_bootstrap()) as producer:
        summary = send_paced(events, producer, speedup=speedup, total=len(events), description=name)
    _print_summary(summary, time.monotonic() - started)


@app.command()
def archive(
    max_batch_records: Annotated[int, typer.Option(help="Records per micro-batch at most.")] = 50_000,
    max_batch_seconds: Annotated[float, typer.Option(help="Seconds per micro-batch at most.")] = 2.0,
) -> None:
    """Land every valid event in the append-only master dataset (Delta), exactly once."""
    from lambdalytics.batch.archiver import run_archiver
    from lambdalytics.infra.supervisor import stop_on_signals

    settings = get_settings()
    _bootstrap()  # fail early, with the explanation, when there is no Kafka
    stop = threading.Event()
    with stop_on_signals(stop) as received:  # Ctrl-C/SIGTERM: the current batch is committed first
        stats = run_archiver(
            settings,
            max_batch_records=max_batch_records,
            max_batch_seconds=max_batch_seconds,
            stop_event=stop,
        )
    console.print(f"archived {stats.rows:,} events ({stats.dead_lettered:,} dead-lettered)")
    if signal.SIGTERM in received:
        raise typer.Exit(143)


@batch_app.command("run")
def batch_run(
    full: Annotated[
        bool,
        typer.Option("--full", help="Recompute every view from the whole master, not only the new events."),
    ] = False,
) -> None:
    """Bring every batch view up to the current watermark and publish the version atomically.

    Folds the events archived since the previous version into it; --full recomputes from the master.
    """
    from lambdalytics.batch.job import BatchBusyError, run_batch

    try:
        manifest = run_batch(get_settings(), full=full)
    except BatchBusyError as exc:
        console.print(f"[yellow]skipped:[/] {exc}")
        raise typer.Exit(3) from None
    if manifest is None:
        console.print("nothing archived yet: no batch version")
        return
    console.print(
        f"batch version [bold]{manifest.batch_version}[/] ({manifest.kind}): {manifest.events:,} events, "
        f"watermark time {manifest.watermark_time}"
    )


@app.command()
def erase(
    tenant: Annotated[str, typer.Option(help="The tenant id.")],
    customer: Annotated[str, typer.Option(help="The customer id (its whole identity component is erased).")],
) -> None:
    """Erase a customer from every store (right to erasure) and print the receipt.

    Records the erasure first (pending), purges the master, the event-id index, every view version and
    the serving-store files, then marks it complete. Running it again completes a pending one. Serving
    workers purge their speed stores and caches on their next poll.
    """
    import re

    from lambdalytics.batch.erasure import master_component, purge
    from lambdalytics.batch.writer import BatchBusyError
    from lambdalytics.infra.erasures import REMAINS, ErasureLog
    from lambdalytics.schemas.events import TENANT_ID_PATTERN
    from lambdalytics.serving.audit import AuditLog

    if not re.fullmatch(TENANT_ID_PATTERN, tenant):
        raise typer.BadParameter(f"--tenant must match {TENANT_ID_PATTERN}")
    if not 1 <= len(customer) <= 128:
        raise typer.BadParameter("--customer: 1 to 128 characters")
    settings = get_settings()
    erasures = ErasureLog.open(settings)
    erasure, created = erasures.request(tenant, customer, master_component(settings, tenant, customer))
    erasures.close()
    if created:
        audit = AuditLog(Path(settings.data_dir) / "run" / "audit.sqlite")
        actor = f"cli:{os.environ.get('USER', 'unknown')}"
        audit.record("erasure", tenant_id=tenant, actor=actor, address="cli", target=erasure.erasure_id)
        audit.close()
    console.print(f"erasure [bold]{erasure.erasure_id}[/] ({'recorded' if created else erasure.state})")
    try:
        done = purge(settings, erasure.erasure_id, say=lambda text: console.print(f"· {text}"))
    except BatchBusyError as exc:
        console.print(f"[yellow]still pending:[/] {exc}; run the same command again")
        raise typer.Exit(3) from None
    table = Table("store", "removed", "at")
    for name, facts in sorted(done.stores.items()):
        removed = ", ".join(f"{k}={v}" for k, v in facts.items() if k != "at")
        table.add_row(name, removed, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(facts["at"])))
    console.print(table)
    console.print(f"[bold]{done.state}[/]. {REMAINS}")


@batch_app.command("backfill")
def batch_backfill(
    since: Annotated[str | None, typer.Option(help="First event date (UTC), YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Last event date (UTC), YYYY-MM-DD, inclusive.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="Compute only this registered metric, over the whole history below W."),
    ] = None,
) -> None:
    """Recompute the views for keys with events in a date range, or one registered metric; idempotent."""
    import datetime as dt

    from lambdalytics.batch.job import BackfillError, BatchBusyError, backfill

    if metric is not None:
        if since or until or tenant:
            raise typer.BadParameter("--metric covers the whole history: no --since, --until or --tenant")
        from lambdalytics.batch.metric_backfill import backfill_metric

        try:
            manifest = backfill_metric(get_settings(), metric)
        except (BackfillError, BatchBusyError) as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        console.print(f"batch version [bold]{manifest.batch_version}[/] ({manifest.kind}) serves {metric}")
        return
    if since is None or until is None:
        raise typer.BadParameter("give --since and --until, or --metric")
    try:
        start, end = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        manifest = backfill(get_settings(), start, end, tenant)
    except (BackfillError, BatchBusyError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"batch version [bold]{manifest.batch_version}[/] ({manifest.kind})")


@batch_app.command("compact")
def batch_compact(
    keep: Annotated[
        int | None,
        typer.Option(min=2, help="View versions to keep (default LAMBDALYTICS_VIEW_VERSIONS_KEPT)."),
    ] = None,
) -> None:
    """Compact the master now and vacuum what retention allows (the archiver also does it on a schedule)."""
    from lambdalytics.batch.compaction import MaintenancePolicy, describe, maintain

    settings = get_settings()
    policy = MaintenancePolicy.from_settings(settings)
    if keep is not None:
        policy = MaintenancePolicy(
            interval_seconds=policy.interval_seconds, keep=keep, retention_hours=policy.retention_hours
        )
    with console.status("compacting the master dataset…") as status:

        def progress(report) -> None:
            console.print(describe(report))
            status.update("vacuuming old view versions…")

        result = maintain(settings.data_dir, policy, on_table=progress)
    if result.skipped:
        console.print(f"[yellow]retention skipped:[/] {result.skipped}; compaction done, run again later")
        raise typer.Exit(3)
    console.print(f"done in {result.seconds:,.1f}s, newest {policy.keep} view versions kept")


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Option(help="Folder for <family>.schema.json.")] = SCHEMA_DIR,
    check: Annotated[bool, typer.Option(help="Fail if the files differ instead of writing them.")] = False,
) -> None:
    """Write (or check) the JSON Schema of each event family."""
    stale = []
    for family, model in MODEL_BY_FAMILY.items():
        text = json.dumps(model.model_json_schema_with_rules(), indent=2, sort_keys=True) + "\n"
        path = out / f"{family.value}.schema.json"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            console.print(f"wrote {path}")
    if stale:
        console.print(f"[red]stale:[/] {stale}; run `lambdalytics schemas export`")
        raise typer.Exit(1)


@schemas_app.command("validate")
def schemas_validate(
    file: Annotated[Path, typer.Argument(help="JSON lines of events; '-' reads standard input.")],
) -> None:
    """Validate events against the contracts; print each rejection with its reason."""
    lines = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    ok = bad = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            validate_event(orjson.loads(line))
            ok += 1
        except (ContractViolation, orjson.JSONDecodeError) as exc:
            bad += 1
            reason = (
                exc.as_dict()
                if isinstance(exc, ContractViolation)
                else {"reason": "invalid_json", "message": str(exc)}
            )
            print(json.dumps({"line": n, **reason}))
    console.print(f"{ok:,} valid, {bad:,} rejected")
    raise typer.Exit(1 if bad else 0)


metrics_app = typer.Typer(help="The metric catalog: built-in and registered metrics.")
app.add_typer(metrics_app, name="metrics")


@metrics_app.callback(invoke_without_command=True)
def metrics(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The metric catalog: name, grain, formula, unit (built-in and registered)."""
    if ctx.invoked_subcommand is not None:
        return
    from lambdalytics.infra import metric_registry

    registered = metric_registry.current(get_settings().data_dir)
    rows = registered.catalog.describe()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} metrics (registered set v{registered.version})")
    for col in ("name", "grain", "formula", "unit", "source"):
        table.add_column(col)
    for r in rows:
        source = "file" if registered.is_registered(r["name"]) else "built-in"
        table.add_row(r["name"], r["grain"], r["formula"], r["unit"], source)
    Console().print(table)


@metrics_app.command("add")
def metrics_add(
    file: Annotated[Path, typer.Argument(help="A TOML catalog file of [[metric]] tables (docs/metrics.md).")],
) -> None:
    """Validate a catalog file with the catalog's rules and register its metrics (nothing on error).

    Then `lambdalytics batch backfill --metric NAME` computes a new base metric over the whole history.
    """
    from lambdalytics.infra import metric_registry

    try:
        registered, added = metric_registry.add(get_settings().data_dir, file)
    except metric_registry.CatalogFileError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    for m in added:
        console.print(f"registered [bold]{m.name}[/] ({m.kind}, {m.grain}): {m.formula}")
    console.print(f"registered metric set v{registered.version}")
