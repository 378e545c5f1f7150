"""The Spark session, sized for this machine by default and pointed at a cluster by configuration.

Defaults (2 cores, 24 GiB): ``local[*]``, 4 GiB driver, 16 shuffle partitions with adaptive query
execution coalescing them, UTC session time zone, Arrow transfer on, TIMESTAMP_MICROS Parquet (so
Delta gets min/max stats). On a cluster set ``LAMBDALYTICS_SPARK_MASTER=spark://host:7077`` (or
``yarn``/``k8s://…``), ``LAMBDALYTICS_SPARK_DRIVER_HOST`` to an address the workers reach when they
run on other machines, and raise ``LAMBDALYTICS_SPARK_SHUFFLE_PARTITIONS`` to ~2-3× total cores;
any other Spark property goes through ``LAMBDALYTICS_SPARK_CONF`` as ``key=value;key=value``
(applied last, so it overrides everything here).

Every aggregate is Spark SQL, but PySpark may still start Python workers on executors (e.g. for
local rows), with the interpreter the driver's ``PYSPARK_PYTHON`` names; unset, it is set to this
one — right on one box and wherever every node has the environment at the same path.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from lambdalytics.infra.settings import Settings


def build_session(settings: Settings):
    from pyspark.sql import SparkSession

    host = settings.spark_driver_host
    os.environ.setdefault("SPARK_LOCAL_IP", host)  # never bind a non-loopback address by accident
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # read once, by SparkContext: executors' Python
    builder = (
        SparkSession.builder.appName("lambdalytics-batch")
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", host)
        .config("spark.driver.bindAddress", host)
    )
    for item in filter(None, (settings.spark_conf or "").split(";")):
        key, _, value = item.partition("=")
        builder = builder.config(key.strip(), value.strip())
    session = builder.getOrCreate()
    running = session.sparkContext.master
    if running != settings.spark_master:
        # getOrCreate hands back a live session as it is: a cluster run must never go local silently
        raise RuntimeError(
            f"a Spark session on {running!r} is already running in this process; "
            f"cannot start one on {settings.spark_master!r}"
        )
    session.sparkContext.setLogLevel("WARN")
    return session


@contextlib.contextmanager
def spark_session(settings: Settings) -> Iterator:
    """A session for the block; always stopped (delta-rs + a live JVM at exit aborts the process)."""
    session = build_session(settings)
    try:
        yield session
    finally:
        session.stop()
