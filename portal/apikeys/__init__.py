"""API keys: the service (create, revoke, identify, check) and the admins' page."""
