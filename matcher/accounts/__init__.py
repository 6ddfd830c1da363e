"""Accounts: users and roles, password hashing, access tokens and API keys."""
