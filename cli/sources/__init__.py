"""Event sources: the synthetic generator and dataset replays."""
