"""Kaspero's domain: pure models and rules. Standard library, attrs and rapidfuzz only; no I/O."""
