"""speed layer."""
