"""Property-based tests (Hypothesis): parsers never leak an undocumented exception, geometry holds."""
