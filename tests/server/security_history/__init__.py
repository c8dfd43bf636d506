"""Issue 12: one module per class of defect on the history, export and audit side."""
