"""Users, roles, tokens, API keys, login rate limiting and the hash-chained audit log."""
