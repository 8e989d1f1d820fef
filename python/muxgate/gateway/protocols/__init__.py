"""Inbound API surfaces, one module per protocol, shaped alike."""
