"""Operator commands, one module per command group; each imports its heavy parts lazily."""
