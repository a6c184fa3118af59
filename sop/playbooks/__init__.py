"""SOP playbooks: the YAML language (models, loader, validation) operators write."""
