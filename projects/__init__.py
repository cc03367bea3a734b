"""Projects, project members and API keys."""
