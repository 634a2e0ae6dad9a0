"""The pytest entry module of pytest-unlearn (``pytest11`` entry point ``unlearn``).

Imported by every pytest run in the environment, so it imports nothing heavy: torch,
transformers, peft and lm_eval are loaded inside fixtures, only when a test needs a model.

How a run goes:
  configure     options parsed and checked (bad input is a usage error, before anything runs)
  sessionstart  methods registered (entry points + conftest hook) and resolved
  collection    each test that takes ``knowundo_item`` is parametrized by method, domain and
                val item; the item's domain comes from the ``knowundo`` marker of its suite
  tests         ``unlearned_model`` (session scope, one model in memory at a time) is built
                or loaded from the cache; each item test asserts forget or retain
  finish        per-item outcomes become the metrics: terminal table, JSON, JUnit properties
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from . import settings as _settings
from .errors import UnlearnError

if TYPE_CHECKING:
    from .data import Item
    from .models import ModelHandle
    from .scoring import ItemScore
    from .session import UnlearnSession

SESSION_KEY = pytest.StashKey["UnlearnSession"]()
DOMAIN_MARKER = "knowundo"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{DOMAIN_MARKER}(domain, scope=None): the KnowUnDo domain (privacy or "
        "copyright) and optionally the scope (unlearn or retention) whose val items "
        "parametrize the tests that take the knowundo_item fixture")
    from .session import UnlearnSession

    # A rebuilt cache entry is news, not a failure: keep it a warning under -W error.
    config.addinivalue_line("filterwarnings", "default::pytest_unlearn.cache.CacheWarning")
    resolved = _settings.resolve(config)
    config.stash[SESSION_KEY] = UnlearnSession(resolved, _ProgressWriter(config))
    if not _is_worker(config):
        config.pluginmanager.register(UnlearnReporter(config), "unlearn-reporter")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[SESSION_KEY].settings.header_lines()


def pytest_sessionstart(session: pytest.Session) -> None:
    from .registry import MethodRegistry

    unlearn = session.config.stash[SESSION_KEY]
    try:
        registry = MethodRegistry.from_entry_points()
        session.config.hook.pytest_unlearn_register_methods(registry=registry)
        unlearn.start(registry)
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "knowundo_item" not in metafunc.fixturenames:
        return
    unlearn = metafunc.config.stash[SESSION_KEY]
    domain, scope = _domain_of(metafunc)
    try:
        items = [item for item in unlearn.domain_data(domain).items()
             if scope is None or item.scope == scope]
    except UnlearnError as error:
        raise pytest.Collector.CollectError(str(error)) from None
    if "unlearn_method" in metafunc.fixturenames:
        metafunc.parametrize("unlearn_method", unlearn.methods, indirect=True, scope="session")
    metafunc.parametrize("unlearn_domain", [domain], indirect=True, scope="session")
    metafunc.parametrize("knowundo_item", items, indirect=True,
                         ids=[f"{item.scope}-{item.index:03d}" for item in items])


def _domain_of(metafunc: pytest.Metafunc) -> tuple[str, str | None]:
    """The (domain, scope) of a knowundo marker; scope None means both scopes."""
    from .data import SCOPES

    marker = metafunc.definition.get_closest_marker(DOMAIN_MARKER)
    where = metafunc.definition.nodeid
    if marker is None or len(marker.args) != 1 or set(marker.kwargs) - {"scope"}:
        raise pytest.Collector.CollectError(
            f"{where} takes knowundo_item but has no @pytest.mark.{DOMAIN_MARKER}(DOMAIN) "
            f"marker (optionally with scope='unlearn' or scope='retention'); mark the test or "
            f"its module, e.g. pytestmark = pytest.mark.{DOMAIN_MARKER}('privacy')")
    domain, scope = marker.args[0], marker.kwargs.get("scope")
    if domain not in _settings.DOMAINS:
        raise pytest.Collector.CollectError(
            f"{where}: @pytest.mark.{DOMAIN_MARKER}({domain!r}) names no domain; the domains "
            f"are {', '.join(_settings.DOMAINS)}")
    if scope is not None and scope not in SCOPES:
        raise pytest.Collector.CollectError(
            f"{where}: @pytest.mark.{DOMAIN_MARKER}(scope={scope!r}) names no scope; the "
            f"scopes are {', '.join(SCOPES)}")
    return domain, scope


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def unlearn_session(pytestconfig: pytest.Config) -> UnlearnSession:
    """The run's state: settings, methods, data and model pipeline."""
    return pytestconfig.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def unlearn_method(request: pytest.FixtureRequest) -> str:
    """The method under test (parametrized by --unlearn-method)."""
    return _param(request, "unlearn_method", "the method comes from --unlearn-method")


@pytest.fixture(scope="session")
def unlearn_domain(request: pytest.FixtureRequest) -> str:
    """The KnowUnDo domain of the current suite (from its knowundo marker)."""
    return _param(request, "unlearn_domain", f"mark the test with @pytest.mark.{DOMAIN_MARKER}")


@pytest.fixture
def knowundo_item(request: pytest.FixtureRequest) -> Item:
    """One val record of the suite's domain: scope, index, question, answer."""
    return _param(request, "knowundo_item", f"mark the test with @pytest.mark.{DOMAIN_MARKER}")


@pytest.fixture(scope="session")
def vanilla_model(unlearn_session: UnlearnSession, unlearn_domain: str,
                  ) -> Iterator[ModelHandle]:
    """The starting model with the domain's knowledge injected (built once, then cached)."""
    handle = _or_fail(lambda: unlearn_session.pipeline.load_vanilla(
        unlearn_session.domain_data(unlearn_domain)))
    yield handle
    handle.release()


@pytest.fixture(scope="session")
def unlearned_model(unlearn_session: UnlearnSession, unlearn_domain: str,
                    unlearn_method: str) -> Iterator[ModelHandle]:
    """The vanilla model after the method ran (built once, then cached). Only one is held in
    memory at a time: pytest finishes it before the next method's is set up."""
    handle = _or_fail(lambda: unlearn_session.unlearned_model(unlearn_domain, unlearn_method))
    yield handle
    handle.release()


@pytest.fixture
def item_score(request: pytest.FixtureRequest, unlearn_session: UnlearnSession,
               unlearned_model: ModelHandle, knowundo_item: Item) -> ItemScore:
    """The unlearned model's teacher-forced score on the current item (batched per model).

    Also records the item's properties for the report and JUnit XML.
    """
    score = _or_fail(lambda: unlearn_session.score_of(unlearned_model, knowundo_item))
    threshold = unlearn_session.settings.recall_threshold
    request.node.user_properties.extend([
        ("token_accuracy", round(score.token_accuracy, 6)),
        ("recalled", score.recalled(threshold)),
        ("mean_logprob", round(score.mean_logprob, 6)),
        ("answer_tokens", score.answer_tokens),
        ("model_cache_key", unlearned_model.cache_key),
    ])
    return score


@pytest.fixture
def recalls(unlearn_session: UnlearnSession) -> Any:
    """``recalls(score)``: whether a score counts as recalled under --unlearn-criterion."""
    threshold = unlearn_session.settings.recall_threshold
    return lambda score: score.recalled(threshold)


def _param(request: pytest.FixtureRequest, name: str, hint: str) -> Any:
    if not hasattr(request, "param"):
        raise pytest.UsageError(f"fixture {name!r} is not parametrized for "
                                f"{request.node.nodeid}: {hint}")
    return request.param


def _or_fail(build: Any) -> Any:
    """Run a model step; a user-fixable problem fails the test with its message only."""
    try:
        return build()
    except UnlearnError as error:
        pytest.fail(str(error), pytrace=False)


# --- reporting (controller only) -----------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Label each item test before its fixtures run, so even a setup error is counted."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "knowundo_item" in params and "unlearn_method" in params:
        knowundo = params["knowundo_item"]
        item.user_properties.extend([("unlearn_method", params["unlearn_method"]),
                                     ("unlearn_domain", knowundo.domain),
                                     ("unlearn_scope", knowundo.scope),
                                     ("unlearn_item", knowundo.id)])


class UnlearnReporter:
    """Collects item outcomes from test reports and writes the metrics at the end.

    Registered on the controller only; under xdist, outcomes arrive through the reports'
    user_properties.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.summary: dict[str, Any] | None = None

    @property
    def unlearn(self) -> UnlearnSession:
        return self.config.stash[SESSION_KEY]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if "unlearn_item" not in properties:
            return
        from .report import ItemOutcome

        if report.when == "call":
            self.unlearn.outcomes.append(ItemOutcome.from_properties(properties, report.outcome))
        elif report.when == "setup" and report.failed:
            self.unlearn.outcomes.append(ItemOutcome.from_properties(properties, "error"))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        """Runs before junitxml writes its file, so the suite properties make it in.

        With --unlearn-json a report is written even when no item test ran (no rows), so a
        CI step that reads it finds it."""
        if not self.unlearn.outcomes and self.unlearn.settings.json_path is None:
            return
        from .report import suite_properties, write_json

        self.summary = self._summary()
        xml = _junit_xml(self.config)
        if xml is not None:
            for name, value in suite_properties(self.summary):
                xml.add_global_property(name, value)
        if self.unlearn.settings.json_path is not None:
            write_json(self.unlearn.settings.json_path, self.summary)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is None or not self.summary["rows"]:
            return
        from .report import format_table

        terminalreporter.write_sep("=", "unlearning summary")
        for line in format_table(self.summary["rows"]):
            terminalreporter.write_line(line)
        for row in self.summary["rows"]:
            region = (row.get("method_log") or {}).get("region")
            if region:
                terminalreporter.write_line(
                    f"{row['method']} {row['domain']} region ({region['rule']} rule, mu "
                    f"{region['mu']:.4g}, sigma {region['sigma']:.4g}): {region['n_selected']} of "
                    f"{region['n_tensors']} tensors, {region['fraction_parameters']:.1%} of "
                    f"trainable parameters: {', '.join(region['selected'])}")
        settings = self.unlearn.settings
        terminalreporter.write_line(
            f"Succ: pass rates of the item tests (criterion {settings.criterion}); (tok): the "
            "reference's token-level figures; PPL: paper Eq. 5")
        if settings.json_path is not None:
            terminalreporter.write_line(f"JSON report: {settings.json_path}")

    def _summary(self) -> dict[str, Any]:
        from .report import outcomes_as_dicts, summarize

        unlearn = self.unlearn
        settings = unlearn.settings
        summary = {
            "run": {"methods": unlearn.methods, "model": settings.model, "data": settings.data,
                    "criterion": settings.criterion, "seed": settings.seed,
                    "inject": settings.inject, "device": settings.device,
                    "dtype": settings.dtype, "seconds": round(time.time() - unlearn.started, 3)},
            "rows": summarize(unlearn.outcomes),
            "items": outcomes_as_dicts(unlearn.outcomes),
        }
        for row in summary["rows"]:
            # What the method logged (steps, losses, MemFlex's region) is read back from the
            # cache entry, which is on this machine even when xdist workers built it.
            row["method_log"] = unlearn.method_log(row["model_cache_key"])
        self.config.hook.pytest_unlearn_update_summary(summary=summary)
        return summary


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _junit_xml(config: pytest.Config) -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest internals moved
        return None
    return config.stash.get(xml_key, None)


class _ProgressWriter:
    """Shows long stages (injection, unlearning, scoring) on the terminal even while output
    is captured; quiet with -q, and at most one training-step line every two seconds."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.last = 0.0

    def __call__(self, message: str) -> None:
        if self.config.get_verbosity() < 0 or _is_worker(self.config):
            return
        now = time.monotonic()
        if " step " in message and now - self.last < 2.0:
            return
        self.last = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"[unlearn] {message}")
        else:
            reporter.write_line(f"[unlearn] {message}")
