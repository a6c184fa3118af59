"""Staff: customer inheritance when a member leaves or hands over, the audit log, the report."""
