"""Reservoir: gather and validate what a run stands on (environment, resources, data)."""
