"""Event contracts and the one metric catalog."""
