"""Every registered method, built in or installed, passes the conformance battery."""

import pytest

from pytest_unlearn.conformance import MethodConformance
from pytest_unlearn.registry import MethodRegistry

REGISTRY = MethodRegistry.from_entry_points()


class TestEveryRegisteredMethod(MethodConformance):
    @pytest.fixture(params=REGISTRY.names())
    def method_class(self, request):
        return REGISTRY.get(request.param)
