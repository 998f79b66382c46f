"""The composition root and the processes: API, command line, scheduler."""
