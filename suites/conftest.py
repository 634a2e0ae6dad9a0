"""The suites' own option: ``--model``, short for ``--unlearn-model``, as in the commands
the suites are run with (``pytest suites/privacy --unlearn-method=memflex
--model=qwen1.5-7b``).

The plugin defines only ``--unlearn-*`` options, so that it never clashes with another
project's ``--model``; pytest reads this conftest's options when a run names the suites'
folder (or one below it). Installed and run with ``--pyargs``, use ``--unlearn-model``.
"""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("unlearn").addoption(
        "--model",
        dest="unlearn_model",
        default=None,
        metavar="VALUE",
        help="short for --unlearn-model, in the suites' folder",
    )
