"""Moved to ``lambdalytics.infra.private_files`` (the floor), so batch and speed can keep secrets too."""

from lambdalytics.infra.private_files import MODE, create_once, ensure, replace, sqlite

__all__ = ["MODE", "create_once", "ensure", "replace", "sqlite"]
