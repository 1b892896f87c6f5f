"""Default time budgets of a run, shared by the CLI and the runner."""

DEFAULT_CELL_TIMEOUT_S = 300.0
DEFAULT_TOTAL_TIMEOUT_S = 900.0
