"""The Kafka client's own connection tracebacks become one line; ours and --verbose keep theirs."""

import io
import logging
import sys

import pytest

from lambdalytics.infra.client_logs import condense_client_errors


@pytest.fixture
def root():
    logger = logging.getLogger("client-logs-test-root")  # a stand-in root: the real one is pytest's
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.handlers = []


def _raise_and_log(logger: logging.Logger, name: str) -> None:
    try:
        None.recv(4096)  # type: ignore[attr-defined]
    except AttributeError:
        record = logger.makeRecord(name, logging.ERROR, __file__, 1, "%s: Error receiving", ("conn",), None)
        record.exc_info = sys.exc_info()
        logger.handle(record)


def test_client_traceback_becomes_one_line_with_the_error(root):
    logger, stream = root
    condense_client_errors(logger)
    condense_client_errors(logger)  # idempotent: one filter per handler
    assert len(logger.handlers[0].filters) == 1
    _raise_and_log(logger, "kafka.net.transport")
    out = stream.getvalue()
    assert "Traceback" not in out
    assert out.strip() == "conn: Error receiving (AttributeError: 'NoneType' object has no attribute 'recv')"


def test_our_tracebacks_and_verbose_keep_theirs(root):
    logger, stream = root
    condense_client_errors(logger)
    _raise_and_log(logger, "lambdalytics.speed.consumer")
    assert "Traceback" in stream.getvalue()

    verbose, vstream = logging.getLogger("client-logs-verbose"), io.StringIO()
    verbose.propagate, verbose.handlers = False, [logging.StreamHandler(vstream)]
    verbose.setLevel(logging.DEBUG)
    condense_client_errors(verbose)
    _raise_and_log(verbose, "kafka.net.transport")
    assert "Traceback" in vstream.getvalue()
