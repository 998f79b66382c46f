"""Concrete implementations of the application's ports."""
