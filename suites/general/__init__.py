"""The general suite."""
