"""Storage: SQLAlchemy models, engine factory and migrations. Knows nothing of WeCom or YAML."""
