"""Secrets: one strength rule wherever they come from, files private from their first byte, and workers
racing the first write agreeing on one value."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from lambdalytics.infra import private_files
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.credentials import Credentials, WeakSecret, weakness

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit

WEAK = ["", "adm", "admin-secret", "s" * 32, "ab" * 40]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("weak", WEAK)
def test_a_weak_configured_secret_is_refused_in_every_env(tmp_path, env, weak):
    assert weakness(weak) is not None
    with pytest.raises(WeakSecret, match="LAMBDALYTICS_ADMIN_TOKEN"):
        Credentials.open(Settings(data_dir=tmp_path, env=env, admin_token=weak, token_secret=TOKEN_SECRET))
    with pytest.raises(WeakSecret, match="LAMBDALYTICS_TOKEN_SECRET"):
        Credentials.open(Settings(data_dir=tmp_path, env=env, admin_token=ADMIN_TOKEN, token_secret=weak))


def test_strong_secrets_pass_the_rule_and_prod_opens_with_them(tmp_path):
    assert weakness(ADMIN_TOKEN) is None and weakness(TOKEN_SECRET) is None
    creds = Credentials.open(
        Settings(data_dir=tmp_path, env="prod", admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET)
    )
    try:
        assert creds.admin_token == ADMIN_TOKEN
        assert not (tmp_path / "run" / "admin_token.secret").exists()  # prod never generates one
    finally:
        creds.close()


def test_an_empty_or_weak_secret_file_is_refused_not_used(tmp_path):
    """An empty admin token would let ``Authorization: Bearer `` in as admin."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "admin_token.secret").write_text("")
    with pytest.raises(WeakSecret, match="admin_token.secret is empty"):
        Credentials.open(Settings(data_dir=tmp_path, token_secret=TOKEN_SECRET))
    (run / "token_secret.secret").write_text("short\n")
    with pytest.raises(WeakSecret, match="token_secret.secret is shorter"):
        Credentials.open(Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN))


def test_generated_secrets_are_private_from_their_first_byte(tmp_path, monkeypatch):
    """Under a permissive umask the secret is still never readable by others: the temporary file is
    created 0600 and linked into place whole."""
    seen: list[tuple[str, int, str]] = []
    real_link = os.link

    def link(src, dst, *args, **kwargs):
        seen.append((Path(dst).name, _mode(Path(src)), Path(src).read_text()))
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    old = os.umask(0)
    try:
        creds = Credentials.open(Settings(data_dir=tmp_path))
    finally:
        os.umask(old)
    creds.close()
    run = tmp_path / "run"
    secrets_seen = [(name, mode, text) for name, mode, text in seen if name.endswith(".secret")]
    assert sorted(name for name, _, _ in secrets_seen) == ["admin_token.secret", "token_secret.secret"]
    assert all(mode == 0o600 and weakness(text) is None for _, mode, text in secrets_seen)
    databases = sorted(name for name, _, _ in seen if name.endswith(".sqlite"))
    assert databases == sorted(
        [
            "accounts.sqlite",
            "api_keys.sqlite",
            "audit.sqlite",
            "branding.sqlite",
            "host_keys.sqlite",
            "tenants.sqlite",
        ]
    )  # every credential store is created 0600 before SQLite opens it
    assert all(mode == 0o600 for name, mode, _ in seen) and all(_mode(run / n) == 0o600 for n in databases)
    assert _mode(run / "admin_token.secret") == _mode(run / "token_secret.secret") == 0o600
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".secret")) == [
        "admin_token.secret",
        "token_secret.secret",
    ]  # no temporary file left behind
    assert (run / "admin_token.secret").read_text() == creds.admin_token


def test_a_worker_losing_the_first_write_race_adopts_the_winners_secret(tmp_path, monkeypatch):
    """Worker B checked that no file exists, then worker A wrote its secret: B must use A's, or A's
    tokens fail on B (and the other way round)."""
    path = tmp_path / "run" / "token_secret.secret"
    winner = private_files.create_once(path, "A" * 8 + TOKEN_SECRET)
    monkeypatch.setattr(Path, "exists", lambda self: False)  # B's check ran before A's write
    assert private_files.create_once(path, "B" * 8 + TOKEN_SECRET) == winner
    assert path.read_text() == winner


def test_workers_racing_the_first_open_all_agree(tmp_path):
    settings = Settings(data_dir=tmp_path)
    start = threading.Barrier(8)
    opened: list[Credentials] = []

    def open_one():
        start.wait()
        opened.append(Credentials.open(settings))

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(opened) == 8
        assert len({c.admin_token for c in opened}) == 1
        token, _ = opened[0].signer.issue("acme", "c1", 600)
        assert all(c.signer.verify(token).customer_id == "c1" for c in opened)
    finally:
        for c in opened:
            c.close()


def test_replace_writes_whole_private_files_over_old_ones(tmp_path):
    """``credentials.json``: rewritten by every ``lambdalytics up``; a file left 0644 becomes 0600."""
    path = tmp_path / "credentials.json"
    path.write_text("old")
    path.chmod(0o644)
    private_files.replace(path, '{"admin token": "x"}')
    assert path.read_text() == '{"admin token": "x"}' and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]


def test_an_empty_bearer_token_is_never_the_admin(tmp_path):
    from lambdalytics.serving.auth import AuthError, resolve

    creds = Credentials.open(Settings(data_dir=tmp_path))
    try:
        for header in ("Bearer ", "Bearer    "):
            with pytest.raises(AuthError):
                resolve(header, registry=creds.registry, signer=creds.signer, admin_token="")
    finally:
        creds.close()
