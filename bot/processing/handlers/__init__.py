"""Handlers, one module per family; :mod:`bot.processing.handlers.registry` wires them."""
