"""The copyright suite."""
