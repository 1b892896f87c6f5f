"""Concrete remediation actions, one module per target kind, all built on `opslib.actions`."""
