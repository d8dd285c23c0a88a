"""Scopeflow: a BPMN-driven process automation suite whose spans are its evidence."""

__version__ = "0.1.0"
