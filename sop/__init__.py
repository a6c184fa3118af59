"""SOP engine: playbooks, campaigns, templates, audiences, scheduling and delivery rules."""
