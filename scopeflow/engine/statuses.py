"""Instance statuses, in a module with no imports so the CLI can name them without loading the ORM."""

RUNNING, WAITING, COMPLETED, BLOCKED, ERROR, CANCELLED = (
    "running", "waiting", "completed", "blocked", "error", "cancelled",
)
INSTANCE_STATUSES = (RUNNING, WAITING, COMPLETED, BLOCKED, ERROR, CANCELLED)
FINAL_STATUSES = (COMPLETED, BLOCKED, CANCELLED)
