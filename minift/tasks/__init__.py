"""One module per task family, each the whole story of that task."""
