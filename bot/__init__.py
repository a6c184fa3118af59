"""The callback bot and composition root: HTTP server, processor, WeCom client, CLI."""
