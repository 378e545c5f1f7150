"""``lambdalytics up`` gives each demo tenant an owner who can sign in to the dashboard at once."""

from __future__ import annotations

import pytest

from lambdalytics.cli.up import _demo_owner
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.credentials import Credentials

from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit


def test_a_demo_owner_is_created_then_given_a_fresh_password_on_the_next_start(tmp_path):
    creds = Credentials.open(Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET))
    creds.registry.create("demo-food", "demo-food")
    email, first = _demo_owner(creds, "demo-food")
    user = creds.users.authenticate(email, first)
    assert user is not None and user.role == "owner" and user.tenant_id == "demo-food"
    again, second = _demo_owner(creds, "demo-food")  # a restart on the same data dir
    assert again == email and second != first
    assert (
        creds.users.authenticate(email, first) is None and creds.users.authenticate(email, second) is not None
    )
    assert [u.email for u in creds.users.list("demo-food")] == [email]
    creds.close()
