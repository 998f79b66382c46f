"""Benchmarks behind `make bench`: figures printed, never timed assertions."""
