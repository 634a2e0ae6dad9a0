"""The privacy suite."""
