"""The suites of pytest-unlearn, installed as ``pytest_unlearn_suites``: run them from
anywhere with ``pytest --pyargs pytest_unlearn_suites.privacy``; ``python -m
pytest_unlearn_suites`` prints their folder (the example gates are there)."""
