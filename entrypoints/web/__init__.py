"""The dashboard: server-rendered pages beside the JSON API, read-only, over the same use cases."""
