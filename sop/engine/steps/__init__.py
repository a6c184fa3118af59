"""Step executors, one module per step type; :mod:`.registry` maps actions to them."""
