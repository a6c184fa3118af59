"""Broadcast campaigns (群发): YAML definitions, plans, resumable fan-out, control and results."""
