"""The roof: everything that composes the layers into programs a user runs.

The ``lambdalytics`` command (``commands``), the whole pipeline on one machine (``up``), the API
server's process factories (``serve``), the event sources that feed it (``sources``: generator and
real-data replays) and the screenshot tool. Nothing below imports this package: ``schemas`` is the
contract, ``infra`` the floor (settings, Kafka I/O, broker runtime), ``batch``/``speed``/``serving``
the layers — see docs/architecture.md for the rules, checked by ``tests/test_layers.py``.
"""
