"""line_search package."""
