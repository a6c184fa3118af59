"""Audience conditions: who a playbook or campaign is for, as typed models and as queries."""
