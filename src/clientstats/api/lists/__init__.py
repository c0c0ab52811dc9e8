"""The drill-down read API: every figure of the statistics explained by a list."""
