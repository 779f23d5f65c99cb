"""How a scenario ends other than by passing: `Failed` (a broken promise,
with the message saying which) and `Skipped` (cannot run yet, and why)."""


class Failed(AssertionError):
    pass


class Skipped(Exception):
    pass
