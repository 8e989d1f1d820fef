"""The data plane: a granian RSGI worker that hands every request to the native engine."""
