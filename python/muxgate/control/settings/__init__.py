"""Operator settings: the trial credit, usage retention and the gateway's failover behaviour."""
