"""History queries for planners: volumes, peaks, comparisons, incidents, with quality flags."""
