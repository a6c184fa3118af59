"""Applying fetched platform details to the model: one module per refresh kind."""
