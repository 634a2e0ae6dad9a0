"""The built-in unlearning methods, one module each.

Installed as ``pytest_unlearn_methods`` and registered through the ``pytest_unlearn.methods``
entry-point group, the same way a third-party package registers its own.
"""
