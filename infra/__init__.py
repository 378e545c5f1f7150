"""Runtime plumbing: settings, Kafka I/O, the embedded broker, event sources and the CLI."""
