"""Secrets that pass ``credentials.weakness`` (what every test server is configured with)."""

ADMIN_TOKEN = "test-admin-token-0123456789abcdefghij"
TOKEN_SECRET = "test-token-secret-0123456789abcdefghij"
