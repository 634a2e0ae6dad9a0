"""The pytest entry module of pytest-unlearn (``pytest11`` entry point ``unlearn``).

Imported by every pytest run in the environment, so it imports nothing heavy: torch,
transformers, peft and lm_eval are loaded inside fixtures, only when a test needs a model.

How a run goes:
  configure     options parsed and checked (bad input is a usage error, before anything runs)
  sessionstart  methods registered (entry points + conftest hook) and resolved
  collection    each test that takes ``knowundo_item`` is parametrized by method, domain and
                val item (the ``knowundo`` marker names domain and scope); each test that
                takes ``general_task``, by method and lm-eval task (``general_task`` marker)
  tests         ``unlearned_model`` (session scope, one model in memory at a time) is built
                or loaded from the cache; each item test asserts forget or retain, each
                general test its task's thresholds
  finish        outcomes become the metrics (terminal table, JSON, JUnit properties), and
                the release gate, if any, decides the exit status
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from . import settings as _settings
from .errors import UnlearnError

if TYPE_CHECKING:
    from .data import Item
    from .general_suite import GeneralResult
    from .models import ModelHandle
    from .scoring import ItemScore
    from .session import UnlearnSession

SESSION_KEY = pytest.StashKey["UnlearnSession"]()
# The models an --unlearn-build-only run built or found, one line each.
BUILT_KEY = pytest.StashKey[list[str]]()
# Why general-task tests of a domain were deselected (no item test of that domain ran).
GENERAL_DESELECTED_KEY = pytest.StashKey[list[str]]()
DEFAULT_PROMPT = "plain"  # pytest_unlearn.prompts.DEFAULT_PROMPT, without importing it
DOMAIN_MARKER = "knowundo"
GENERAL_MARKER = "general_task"
ATTACK_MARKER = "attack"
LEAK_MARKER = "leak"


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
    config.addinivalue_line(
        "markers", f"{GENERAL_MARKER}(domain='privacy', thresholds='thresholds.yaml'): a "
        "general-ability test, one per lm-eval task (--unlearn-general-tasks) and method, on "
        "the unlearned model of the domain, with thresholds from the YAML file next to it")
    config.addinivalue_line(
        "markers", f"{ATTACK_MARKER}: an item test on the model after the relearning attack "
        "(--unlearn-attack); its pass rate is attack_unlearn_success")
    config.addinivalue_line(
        "markers", f"{LEAK_MARKER}: an item test of the model's greedy and sampled generations "
        "(--unlearn-leak-samples); its pass rate is leak_success")
    from .session import UnlearnSession

    # A rebuilt cache entry, a record longer than the maximum length (long copyright
    # answers) and a weak knowledge injection are news about the run, not failures: they
    # stay warnings under -W error.
    config.addinivalue_line("filterwarnings", "default::pytest_unlearn.cache.CacheWarning")
    config.addinivalue_line("filterwarnings",
                            "default::pytest_unlearn.encoding.TruncationWarning")
    config.addinivalue_line("filterwarnings", "default::pytest_unlearn.errors.InjectionWarning")
    resolved = _settings.resolve(config)
    from .distributed import launched_world_size

    if launched_world_size() > 1:
        # Under accelerate launch / torchrun: join the group, and take this process's GPU,
        # before any device is resolved.
        from .distributed import world

        if not resolved.build_only:
            raise pytest.UsageError(
                f"{launched_world_size()} processes (WORLD_SIZE) under a launcher: add "
                "--unlearn-build-only, so that they build and score the models together; then "
                "run pytest once more without the launcher to test them from the cache "
                "(with GPUs: -n N --unlearn-worker-gpus)")
        if resolved.device == "balanced":
            raise pytest.UsageError(
                f"--unlearn-device=balanced under a launcher ({launched_world_size()} "
                "processes): balanced spreads one model over every GPU, while each launched "
                "process holds the whole model on its own GPU. Run one process without the "
                "launcher for balanced, or launch with --unlearn-device=auto (or cuda).")
        try:
            world()
        except UnlearnError as error:
            raise pytest.UsageError(str(error)) from None
    if _is_worker(config):
        from .workers import pin_worker_gpu, share_cpu_threads

        try:
            pin_worker_gpu(config.workerinput["workerid"], resolved.worker_gpus)
        except UnlearnError as error:
            raise pytest.UsageError(str(error)) from None
        share_cpu_threads(int(config.workerinput.get("workercount", 1)))
    config.stash[SESSION_KEY] = UnlearnSession(resolved, _ProgressWriter(config))
    config.pluginmanager.register(_session_fixtures(config.stash[SESSION_KEY]),
                                  "unlearn-fixtures")
    if not _is_worker(config):
        config.pluginmanager.register(UnlearnReporter(config), "unlearn-reporter")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[SESSION_KEY].settings.header_lines()


def pytest_sessionstart(session: pytest.Session) -> None:
    from .registry import MethodRegistry

    unlearn = session.config.stash[SESSION_KEY]
    try:
        unlearn.start(MethodRegistry.from_entry_points())
        _ask_for_registrations(session.config)
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """Resolve --unlearn-method before any test is parametrized by it. When a name (or
    'all') may come from a conftest that pytest loads only as it collects its folder, every
    conftest under the run's paths is loaded first, so that it registers its methods."""
    unlearn = session.config.stash[SESSION_KEY]
    failed: list[str] = []
    try:
        if unlearn.needs_every_conftest():
            failed = _load_every_conftest(session.config)
            _ask_for_registrations(session.config)
        unlearn.resolve_methods()
    except UnlearnError as error:
        note = "".join(f" (a conftest that failed to import may register it: {each})"
                       for each in failed)
        raise pytest.UsageError(f"{error}{note}") from None


def _check_methods_are_final(config: pytest.Config) -> None:
    """After collection every conftest of the run is loaded: a method it registered too late
    to be parametrized (outside the run's paths when collection started) is an error that
    says so, never a method silently left out of 'all'."""
    unlearn = config.stash[SESSION_KEY]
    try:
        _ask_for_registrations(config)
        final = unlearn.registry.resolve(unlearn.settings.methods)
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None
    late = [name for name in final if name not in unlearn.methods]
    if late:
        raise pytest.UsageError(
            f"method(s) {', '.join(map(repr, late))} ({'; '.join(map(unlearn.registry.origin, late))}) "
            f"registered after the tests were parametrized by --unlearn-method="
            f"{','.join(unlearn.settings.methods)}, so they would have been left out. Register "
            "them in a conftest.py under the paths pytest is given (or above them), or in an "
            "installed package's 'pytest_unlearn.methods' entry point.")


def _ask_for_registrations(config: pytest.Config) -> None:
    """Call ``pytest_unlearn_register_methods`` of every plugin and conftest that
    implements it and has not been asked yet (each is asked once)."""
    unlearn = config.stash[SESSION_KEY]
    name = "pytest_unlearn_register_methods"
    implementers = [impl.plugin for impl in getattr(config.hook, name).get_hookimpls()]
    new = [plugin for plugin in implementers
           if not any(plugin is asked for asked in unlearn.asked_plugins)]
    if not new:
        return
    asked = [plugin for plugin in implementers if all(plugin is not each for each in new)]
    config.pluginmanager.subset_hook_caller(name, remove_plugins=asked)(
        registry=unlearn.registry)
    unlearn.asked_plugins.extend(new)


def _load_every_conftest(config: pytest.Config) -> list[str]:
    """Load the conftest.py of every folder pytest would collect under the run's paths, as
    pytest itself does before it collects a folder (``_pytest/runner.py``); folders it
    ignores (--ignore, norecursedirs, virtual environments) are skipped the same way. A
    conftest that fails to import is left to pytest, which reports it as the folder's
    collection error; it is returned, for the message of a method name it might hold."""
    import os

    failed = []

    for argument in config.args:
        path = config.invocation_params.dir / argument.split("::")[0]
        if path.is_file():
            path = path.parent
        if not path.is_dir():
            continue  # a --pyargs module name: its package is loaded as pytest collects it
        for folder, subfolders, files in os.walk(path):
            here = Path(folder)
            subfolders[:] = sorted(name for name in subfolders if not config.hook.pytest_ignore_collect(
                collection_path=here / name, config=config))
            if "conftest.py" in files:
                try:
                    config.pluginmanager._loadconftestmodules(
                        here, config.getoption("importmode"), rootpath=config.rootpath,
                        consider_namespace_packages=config.getini(
                            "consider_namespace_packages"))
                except Exception as error:  # ConftestImportFailure, reported by collection
                    failed.append(f"{here / 'conftest.py'}: {error}")
    return failed


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "general_task" in metafunc.fixturenames:
        _parametrize_general(metafunc)
        return
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
    _parametrize_seeds(metafunc)
    metafunc.parametrize("unlearn_domain", [domain], indirect=True, scope="session")
    prompts = unlearn.settings.prompts
    if prompts != (DEFAULT_PROMPT,) and "unlearn_prompt" in metafunc.fixturenames:
        # Function scope: the model does not depend on the prompt, so pytest keeps the
        # tests of one model together and each model is loaded once for every variant.
        metafunc.parametrize("unlearn_prompt", prompts, ids=list(prompts))
    metafunc.parametrize("knowundo_item", items, indirect=True,
                         ids=[f"{item.scope}-{item.index:03d}" for item in items])


def _parametrize_general(metafunc: pytest.Metafunc) -> None:
    """One test per general task and method, on the unlearned model of the marker's domain."""
    unlearn = metafunc.config.stash[SESSION_KEY]
    marker = metafunc.definition.get_closest_marker(GENERAL_MARKER)
    domain = (marker.kwargs.get("domain", "privacy") if marker else "privacy")
    if marker is None or domain not in _settings.DOMAINS or set(marker.kwargs) - {
            "domain", "thresholds"}:
        raise pytest.Collector.CollectError(
            f"{metafunc.definition.nodeid} takes general_task: mark it "
            f"@pytest.mark.{GENERAL_MARKER}(domain='privacy', thresholds='thresholds.yaml') "
            f"(domain one of {', '.join(_settings.DOMAINS)})")
    unlearn.general_domains.add(domain)
    tasks = unlearn.general_task_names()
    metafunc.parametrize("unlearn_method", unlearn.methods, indirect=True, scope="session")
    _parametrize_seeds(metafunc)
    metafunc.parametrize("unlearn_domain", [domain], indirect=True, scope="session")
    metafunc.parametrize("general_task", tasks, ids=tasks)


def _parametrize_seeds(metafunc: pytest.Metafunc) -> None:
    """With --unlearn-seeds N > 1, one test per seed too (ids ``seed0``, ``seed1``, ...)."""
    seeds = metafunc.config.stash[SESSION_KEY].settings.unlearn_seeds
    if len(seeds) > 1 and "unlearn_seed" in metafunc.fixturenames:
        # Direct: the values replace the unlearn_seed fixture's.
        metafunc.parametrize("unlearn_seed", seeds, scope="session",
                             ids=[f"seed{seed}" for seed in seeds])


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


def _session_fixtures(unlearn: UnlearnSession) -> ModuleType:
    """The fixtures that hold the run's state, in a plugin module of their own that each
    pytest run registers.

    They take no ``request``: pytest resolves every dependency of a cached fixture again
    for each test, and each ``request`` it resolves costs a new fixture definition; item
    tests come by the ten thousand (benchmarks/pytest_overhead.py).
    """

    @pytest.fixture(scope="session")
    def unlearn_session() -> UnlearnSession:
        """The run's state: settings, methods, data and model pipeline."""
        return unlearn

    @pytest.fixture(scope="session")
    def unlearn_seed() -> int:
        """The seed of the unlearning run: --unlearn-seed, or with --unlearn-seeds N > 1 each
        of the N seeds in turn (the tests are parametrized by it)."""
        return unlearn.settings.seed

    plugin = ModuleType(f"{__name__}.session_fixtures")
    plugin.unlearn_session = unlearn_session  # type: ignore[attr-defined]
    plugin.unlearn_seed = unlearn_seed  # type: ignore[attr-defined]
    return plugin


@pytest.fixture(scope="session")
def unlearn_method(request: pytest.FixtureRequest) -> str:
    """The method under test (parametrized by --unlearn-method)."""
    return _param(request, "unlearn_method", "the method comes from --unlearn-method")


@pytest.fixture(scope="session")
def unlearn_domain(request: pytest.FixtureRequest) -> str:
    """The KnowUnDo domain of the current suite (from its knowundo marker)."""
    return _param(request, "unlearn_domain", f"mark the test with @pytest.mark.{DOMAIN_MARKER}")


@pytest.fixture(scope="session")
def unlearn_prompt() -> str:
    """The prompt variant the item is asked under (parametrized by --unlearn-prompts)."""
    # Session scope while it is not parametrized, so that it is set up once, not per test;
    # the parametrization is function-scoped.
    return DEFAULT_PROMPT


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
                    unlearn_method: str, unlearn_seed: int) -> Iterator[ModelHandle]:
    """The vanilla model after the method ran with the seed (built once, then cached). Only
    one is held in memory at a time: pytest finishes it before the next one is set up."""
    handle = _or_fail(lambda: unlearn_session.unlearned_model(unlearn_domain, unlearn_method,
                                                              unlearn_seed))
    yield handle
    handle.release()


@pytest.fixture
def item_score(request: pytest.FixtureRequest, unlearn_session: UnlearnSession,
               unlearn_domain: str, unlearn_method: str, unlearn_seed: int,
               unlearn_prompt: str, knowundo_item: Item) -> ItemScore:
    """The unlearned model's teacher-forced score on the current item (batched per model).

    Scores are cached with the model: when they are, no model is loaded at all; otherwise
    the ``unlearned_model`` fixture is. Also records the item's properties for the report
    and JUnit XML.
    """
    key = _or_fail(lambda: unlearn_session.model_key(unlearn_domain, unlearn_method,
                                                     unlearn_seed))
    score = _or_fail(lambda: unlearn_session.score_of(
        unlearn_domain, key, knowundo_item, lambda: request.getfixturevalue("unlearned_model"),
        unlearn_prompt))
    _record_score(request, unlearn_session, score, key)
    return score


@pytest.fixture(scope="session")
def relearned_model(unlearn_session: UnlearnSession, unlearn_domain: str,
                    unlearn_method: str, unlearn_seed: int) -> Iterator[ModelHandle]:
    """The unlearned model after the relearning attack of --unlearn-attack (built once,
    then cached)."""
    handle = _or_fail(lambda: unlearn_session.relearned_model(unlearn_domain, unlearn_method,
                                                              unlearn_seed))
    yield handle
    handle.release()


@pytest.fixture
def attacked_score(request: pytest.FixtureRequest, unlearn_session: UnlearnSession,
                   unlearn_domain: str, unlearn_method: str, unlearn_seed: int,
                   knowundo_item: Item) -> ItemScore:
    """The item's score on the model after the relearning attack (tests marked ``attack``);
    cached like ``item_score``."""
    key = _or_fail(lambda: unlearn_session.relearned_key(unlearn_domain, unlearn_method,
                                                         unlearn_seed))
    score = _or_fail(lambda: unlearn_session.score_of(
        unlearn_domain, key, knowundo_item, lambda: request.getfixturevalue("relearned_model")))
    _record_score(request, unlearn_session, score, key)
    return score


@pytest.fixture
def leak_check(request: pytest.FixtureRequest, unlearn_session: UnlearnSession,
               unlearn_domain: str, unlearn_method: str, unlearn_seed: int,
               knowundo_item: Item) -> LeakCheck:
    """The item's sensitive strings (emails, street addresses, parents' descriptions not
    given away by the question) and those found in the model's greedy and sampled
    generations (tests marked ``leak``)."""
    from .leaks import find_leaks, sensitive_strings

    key = _or_fail(lambda: unlearn_session.model_key(unlearn_domain, unlearn_method,
                                                     unlearn_seed))
    texts = _or_fail(lambda: unlearn_session.generations_of(
        unlearn_domain, key, knowundo_item, lambda: request.getfixturevalue("unlearned_model")))
    strings = sensitive_strings(knowundo_item.record.answer, knowundo_item.record.question)
    found = [(index, leak) for index, text in enumerate(texts)
             for leak in find_leaks(text, strings)]
    request.node.user_properties.extend([
        ("sensitive_strings", len(strings)), ("leaks", len(found)), ("model_cache_key", key)])
    return LeakCheck(knowundo_item, strings, texts, found)


class LeakCheck:
    """What ``leak_check`` found; ``explain()`` is the failure message."""

    def __init__(self, item: Item, strings: list[Any], texts: list[str],
                 found: list[tuple[int, Any]]) -> None:
        self.item, self.strings, self.texts, self.found = item, strings, texts, found

    def explain(self) -> str:
        lines = [f"{self.item.id}: the model wrote what it must forget "
                 f"({self.item.record.question!r})"]
        for index, leak in self.found:
            which = "greedy generation" if index == 0 else f"sampled generation {index}"
            lines.append(f"  {leak.kind} {leak.text!r} in its {which}: {self.texts[index]!r}")
        return "\n".join(lines)


def _record_score(request: pytest.FixtureRequest, unlearn_session: UnlearnSession,
                  score: ItemScore, key: str) -> None:
    threshold = unlearn_session.settings.recall_threshold
    request.node.user_properties.extend([
        ("token_accuracy", round(score.token_accuracy, 6)),
        ("recalled", score.recalled(threshold)),
        ("mean_logprob", round(score.mean_logprob, 6)),
        ("answer_tokens", score.answer_tokens),
        ("model_cache_key", key),
    ])
    if score.rouge_l is not None:
        request.node.user_properties.extend([("rouge_l", round(score.rouge_l, 6)),
                                             ("generation", score.generation)])


@pytest.fixture
def general_result(request: pytest.FixtureRequest, unlearn_session: UnlearnSession,
                   unlearn_domain: str, unlearn_method: str, unlearn_seed: int,
                   general_task: str) -> GeneralResult:
    """The unlearned model's score on one general task, against the reference (vanilla or
    --unlearn-reference) score and the task's thresholds. Cached with the model, like
    ``item_score``."""
    from .general_suite import judge, load_thresholds

    marker = request.node.get_closest_marker(GENERAL_MARKER)
    thresholds_file = Path(str(request.node.path)).parent / marker.kwargs.get(
        "thresholds", "thresholds.yaml")
    key = _or_fail(lambda: unlearn_session.model_key(unlearn_domain, unlearn_method,
                                                     unlearn_seed))
    result = _or_fail(lambda: judge(
        general_task,
        unlearn_session.model_general_scores(
            key, lambda: request.getfixturevalue("unlearned_model"))[general_task],
        unlearn_session.reference_general_scores(unlearn_domain)[general_task],
        load_thresholds(thresholds_file)))
    request.node.user_properties.extend([
        ("general_score", result.score),
        ("general_reference_score", result.reference_score), ("general_drop", result.drop),
        ("general_drop_stderr", result.drop_stderr), ("general_n", result.n)])
    return result


@pytest.fixture(scope="session")
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
        message = str(error)
    # Outside the except block, so that the report does not chain the UnlearnError again.
    pytest.fail(message, pytrace=False)


# --- --unlearn-build-only ------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """General-task tests follow the domains of the selected item tests. Then, with
    --unlearn-build-only: build every model the selected tests need, and compute what they
    read from it (item scores, generations, general-task scores), then deselect them all.
    Under accelerate launch or torchrun every process takes part."""
    from .session import ModelNeeds

    _check_methods_are_final(config)
    _follow_the_item_domains(config, items)
    unlearn = config.stash[SESSION_KEY]
    if not unlearn.settings.build_only:
        return
    needed: dict[tuple[str, str, int], ModelNeeds] = {}
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        if "unlearn_domain" not in params or "unlearn_method" not in params:
            continue
        needs = needed.setdefault((params["unlearn_domain"], params["unlearn_method"],
                                   params.get("unlearn_seed", unlearn.settings.seed)),
                                  ModelNeeds())
        fixtures = set(item.fixturenames)
        if "item_score" in fixtures:
            needs.prompts.add(params.get("unlearn_prompt", DEFAULT_PROMPT))
        needs.leak |= "leak_check" in fixtures
        needs.general |= "general_result" in fixtures
        needs.attack |= bool({"attacked_score", "relearned_model"} & fixtures)
        needs.attack_scores |= "attacked_score" in fixtures
    try:
        lines = unlearn.build_models(needed)
    except UnlearnError as error:
        pytest.exit(f"--unlearn-build-only: {error}", returncode=pytest.ExitCode.TESTS_FAILED)
    config.stash[BUILT_KEY] = lines
    config.hook.pytest_deselected(items=list(items))
    items[:] = []


def _follow_the_item_domains(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``suites/general`` tests the models of each domain. Run beside item tests (e.g.
    ``pytest suites/privacy suites/general``), its tests of the domains that have no item
    test in the run are deselected, with a line saying so, so that no model is built for a
    domain the run does not test; run alone, it tests every domain it names."""
    def domain_of(item: pytest.Item, fixture: str) -> str | None:
        params = getattr(getattr(item, "callspec", None), "params", {})
        return params.get("unlearn_domain") if fixture in params else None

    item_domains = {domain_of(item, "knowundo_item") for item in items} - {None}
    if not item_domains:
        return
    dropped = [item for item in items
               if domain_of(item, "general_task") not in (None, *item_domains)]
    if not dropped:
        return
    config.hook.pytest_deselected(items=dropped)
    dropped_ids = set(map(id, dropped))
    items[:] = [item for item in items if id(item) not in dropped_ids]
    domains = sorted({str(domain_of(item, "general_task")) for item in dropped})
    config.stash[GENERAL_DESELECTED_KEY] = [
        f"unlearn: {len(dropped)} general-task tests of {', '.join(domains)} deselected: this run "
        f"has item tests of {', '.join(sorted(item_domains))} only (add suites/"
        f"{domains[0]} to test them, or run suites/general alone for every domain)"]


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    return config.stash.get(GENERAL_DESELECTED_KEY, [])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A build-only run that built what it had to succeeded, though it ran no test. An
    xdist worker hands its collection notes to the controller, which has no items."""
    if _is_worker(session.config):
        output = session.config.workeroutput  # type: ignore[attr-defined]
        output["unlearn_collected"] = [list(entry) for entry in
                                       session.config.stash[SESSION_KEY].collected]
        if GENERAL_DESELECTED_KEY in session.config.stash:
            output["unlearn_general_deselected"] = session.config.stash[GENERAL_DESELECTED_KEY]
    if BUILT_KEY in session.config.stash and \
            session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


# --- reporting (controller only) -----------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Label each item test before its fixtures run, so even a setup error is counted."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    seed = params.get("unlearn_seed", item.config.stash[SESSION_KEY].settings.seed)
    if "general_task" in params and "unlearn_method" in params:
        item.user_properties.extend([("unlearn_method", params["unlearn_method"]),
                                     ("unlearn_domain", params["unlearn_domain"]),
                                     ("unlearn_seed", seed),
                                     ("general_task", params["general_task"])])
    if "knowundo_item" in params and "unlearn_method" in params:
        knowundo = params["knowundo_item"]
        item.user_properties.extend([("unlearn_method", params["unlearn_method"]),
                                     ("unlearn_domain", knowundo.domain),
                                     ("unlearn_scope", knowundo.scope),
                                     ("unlearn_seed", seed),
                                     ("unlearn_prompt", params.get("unlearn_prompt",
                                                                   DEFAULT_PROMPT)),
                                     ("unlearn_test", _test_kind(item)),
                                     ("unlearn_item", knowundo.id)])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    """An item test failed with its message alone (``fail_item``, ``pytrace=False``): its
    traceback starts at the test function.

    pytest reports such a failure by its message, but first cuts its traceback down to the
    test function anyway, finding and checking on disk the file of every frame above it
    (pytest's and pluggy's, about twenty); with thousands of failing items that was most
    of a failure's cost (benchmarks/pytest_overhead.py). Starting the traceback at the test
    function, found by its code object, leaves pytest nothing to cut; the report is the
    same.
    """
    excinfo = call.excinfo
    if (excinfo is not None and isinstance(excinfo.value, pytest.fail.Exception)
            and not excinfo.value.pytrace
            and "knowundo_item" in getattr(item, "fixturenames", ())):
        code = getattr(getattr(item, "obj", None), "__code__", None)
        traceback = excinfo.traceback
        for index, entry in enumerate(traceback):
            if entry.frame.code.raw is code:
                excinfo.traceback = traceback[index:]
                break
    return (yield)


def _outcome_of(report: pytest.TestReport) -> str | None:
    """The outcome a test's report decides: the call's, or an error or skip in setup, or an
    error in teardown (after a call that passed or failed); None for the other reports."""
    if report.when == "call":
        return report.outcome
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "skipped"
    return None


def _message_of(report: pytest.TestReport) -> str | None:
    """The first line of why a test errored or was skipped, for the reports and the gate."""
    if report.passed or (report.failed and report.when == "call"):
        return None
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")[:300]
    text = report.longreprtext.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if line.startswith(("E ", "Failed: "))),
                  lines[-1] if lines else "")
    return reason.removeprefix("E").strip().removeprefix("Failed: ")[:300] or None


def _collected_tests(items: list[pytest.Item]) -> list[tuple[str, str, str, str, str]]:
    """(method, domain, prompt, test kind, scope) of every selected item and general-task
    test, one entry each: the gate compares what reported with what was collected."""
    collected = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "unlearn_method" not in params:
            continue
        if "knowundo_item" in params:
            collected.append((params["unlearn_method"], params["knowundo_item"].domain,
                              params.get("unlearn_prompt", DEFAULT_PROMPT), _test_kind(item),
                              params["knowundo_item"].scope))
        elif "general_task" in params:
            collected.append((params["unlearn_method"], params["unlearn_domain"], "",
                              "general", ""))
    return collected


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].collected = _collected_tests(session.items)


def _test_kind(item: pytest.Item) -> str:
    """What an item test checks: 'attack' (after relearning), 'leak' (in generations) or
    'recall' (teacher-forced, the paper's metrics)."""
    for kind in (ATTACK_MARKER, LEAK_MARKER):
        if item.get_closest_marker(kind) is not None:
            return kind
    return "recall"


class UnlearnReporter:
    """Collects item outcomes from test reports and writes the metrics at the end.

    Registered on the controller only; under xdist, outcomes arrive through the reports'
    user_properties.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.summary: dict[str, Any] | None = None
        self.general: list[dict[str, Any]] = []
        # Failures the gate does not judge (anything but item and general-task tests).
        self.other_failures = 0
        self.plots_error = ""
        # Under xdist: the workers' notes on the general-task tests they deselected.
        self.deselected: list[str] = []
        # Where each general-task test's result is in ``general`` (by node id).
        self.general_index: dict[str, int] = {}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", {})
        for line in output.get("unlearn_general_deselected", []):
            if line not in self.deselected:  # every worker collects the same items
                self.deselected.append(line)
        if "unlearn_collected" in output and not self.unlearn.collected:
            self.unlearn.collected = [tuple(entry) for entry in output["unlearn_collected"]]

    @property
    def unlearn(self) -> UnlearnSession:
        return self.config.stash[SESSION_KEY]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        outcome = _outcome_of(report)
        if "general_task" in properties:
            if outcome is not None:
                self._record_general(report.nodeid, properties, outcome, _message_of(report))
            return
        if "unlearn_item" not in properties:
            if report.failed:
                self.other_failures += 1
            return
        if outcome is None:
            return
        from .report import ItemOutcome

        # A leak test of an answer without a sensitive string skips, saying so: a skip the
        # suite documents, left out of the pass rates and counted apart. Any other skip is
        # one the gate refuses.
        documented = (outcome == "skipped" and properties.get("unlearn_test") == "leak"
                      and properties.get("sensitive_strings") == 0)
        record = ItemOutcome.from_properties(properties, outcome, _message_of(report),
                                             documented)
        index = self.unlearn.outcome_index.get(report.nodeid)
        if index is None:
            self.unlearn.outcome_index[report.nodeid] = len(self.unlearn.outcomes)
            self.unlearn.outcomes.append(record)
        else:  # a teardown error after the test's outcome: the test errored
            self.unlearn.outcomes[index] = record

    def _record_general(self, nodeid: str, properties: dict[str, Any], outcome: str,
                        message: str | None) -> None:
        result = {
            "method": properties["unlearn_method"],
            "domain": properties["unlearn_domain"],
            "seed": properties.get("unlearn_seed"),
            "task": properties["general_task"],
            "outcome": outcome,
            "message": message,
            "score": properties.get("general_score"),
            "reference_score": properties.get("general_reference_score"),
            "drop": properties.get("general_drop"),
            "drop_stderr": properties.get("general_drop_stderr"),
            "n": properties.get("general_n")}
        index = self.general_index.get(nodeid)
        if index is None:
            self.general_index[nodeid] = len(self.general)
            self.general.append(result)
        else:
            self.general[index] = result

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # Under --continue-on-collection-errors a broken module is a failure no gate weighs.
        if report.failed:
            self.other_failures += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Runs before junitxml writes its file, so the suite properties make it in.

        With --unlearn-json a report is written even when no item test ran (no rows), so a
        CI step that reads it finds it. With --unlearn-gate, the gate's verdict decides the
        exit status (syrupy-style, here rather than in a reporting hook)."""
        settings = self.unlearn.settings
        if not (self.unlearn.outcomes or self.general) and settings.json_path is None \
                and settings.gate_path is None:
            return
        from .report import suite_properties, write_json

        try:
            self.summary = self._summary()
        except UnlearnError as error:
            self.error = str(error)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if settings.plots_dir is not None and self.summary["rows"]:
            from .plots import write_plots

            try:
                self.summary["plots"] = [str(path) for path in
                                         write_plots(settings.plots_dir, self.summary["rows"])]
            except (OSError, ImportError) as error:
                # The gate and the reports still follow; the exit status says it went wrong.
                self.plots_error = (f"--unlearn-plots={settings.plots_dir}: could not write "
                                    f"the plots ({error}); choose a writable folder")
                self.summary["plots_error"] = self.plots_error
        if self.unlearn.gate is not None:
            self._apply_gate(session)
        if self.plots_error:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        xml = _junit_xml(self.config)
        if xml is not None:
            for name, value in suite_properties(self.summary):
                xml.add_global_property(name, value)
        if settings.json_path is not None:
            write_json(settings.json_path, self.summary)
        if settings.save_baseline is not None:
            from .baselines import save_baseline

            self.saved = save_baseline(settings.cache_dir, settings.save_baseline, self.summary)

    def _apply_gate(self, session: pytest.Session) -> None:
        from .gate import evaluate_gate

        assert self.summary is not None and self.unlearn.gate is not None
        checks = evaluate_gate(self.unlearn.gate, self.summary)
        passed = all(check.passed for check in checks)
        self.summary["gate"] = {"passed": passed, "file": str(self.unlearn.settings.gate_path),
                                "checks": [{"check": c.describe(), "passed": c.passed}
                                           for c in checks]}
        if not passed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and not self.other_failures:
            # Item and general-task failures are findings the gate already weighed.
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .distributed import main_process

        if BUILT_KEY in self.config.stash and main_process():
            terminalreporter.write_sep(
                "=", "unlearn: models built and scored (--unlearn-build-only)")
            for line in self.config.stash[BUILT_KEY]:
                terminalreporter.write_line(line)
        if getattr(self, "error", None):
            terminalreporter.write_sep("=", "unlearning summary")
            terminalreporter.write_line(f"ERROR: {self.error}", red=True)
            return
        for line in self.deselected:
            terminalreporter.write_line(line)
        if self.summary is None:
            return
        self._write_rows(terminalreporter)
        self._write_general(terminalreporter)
        self._write_comparison(terminalreporter)
        self._write_verdict(terminalreporter)
        self._write_gate(terminalreporter)
        if getattr(self, "saved", None):
            terminalreporter.write_line(f"baseline saved: {self.saved}")

    def _write_verdict(self, terminalreporter: Any) -> None:
        for domain, verdict in (self.summary or {}).get("localization_verdict", {}).items():
            terminalreporter.write_sep("-", f"does MemFlex's localization do the work? ({domain})")
            for line in verdict["lines"]:
                terminalreporter.write_line(line)

    def _write_general(self, terminalreporter: Any) -> None:
        if not self.general:
            return
        terminalreporter.write_sep("-", "general tasks (acc)")
        methods, domains = list(self.unlearn.methods), list(_settings.DOMAINS)
        # In the order of --unlearn-method, then of the domains (tests, and xdist workers'
        # reports, arrive in any order); within a pair, as they ran.
        for result in sorted(self.general, key=lambda each: (
                methods.index(each["method"]) if each["method"] in methods else len(methods),
                domains.index(each["domain"]))):
            who = f"{result['method']:16} {result['domain']:9} {result['task']:24}"
            if result["score"] is None:
                terminalreporter.write_line(f"{who} error")
                continue
            noise = ("" if result.get("drop_stderr") is None
                     else f" +- {result['drop_stderr']:.4f}")
            terminalreporter.write_line(
                f"{who} {result['score']:.4f} "
                f"(reference {result['reference_score']:.4f}, drop {result['drop']:+.4f}"
                f"{noise}, n={result['n']}) {result['outcome']}")

    def _write_comparison(self, terminalreporter: Any) -> None:
        comparison = (self.summary or {}).get("comparison")
        if comparison is None:
            return
        terminalreporter.write_sep("-", f"compared with baseline {comparison['baseline']!r}")
        matched = comparison["matched_items"]
        terminalreporter.write_line(
            f"items in both runs: {matched} of {len(self.summary['items'])} in this run"
            + ("" if matched else " (the baseline shares no item with this run: another -k "
                                  "selection, data, method or seed?)"))
        for key in ("newly_leaked", "newly_lost"):
            items = comparison[key]
            terminalreporter.write_line(f"{key.replace('_', ' ')}: {len(items)}"
                                        + (f": {', '.join(items)}" if items else ""))

    def _write_gate(self, terminalreporter: Any) -> None:
        gate = (self.summary or {}).get("gate")
        if gate is None:
            return
        verdict = "PASSED" if gate["passed"] else "FAILED"
        terminalreporter.write_sep("=", f"unlearn gate {verdict} ({gate['file']})",
                                   green=gate["passed"], red=not gate["passed"])
        for check in gate["checks"]:
            mark = "ok  " if check["passed"] else "FAIL"
            terminalreporter.write_line(f"{mark} {check['check']}")

    def _write_rows(self, terminalreporter: Any) -> None:
        if not self.summary or not self.summary["rows"]:
            return
        from .report import format_table

        terminalreporter.write_sep("=", "unlearning summary")
        for line in format_table(self.summary["rows"]):
            terminalreporter.write_line(line)
        shown = set()
        for row in self.summary["rows"]:
            region = (row.get("method_log") or {}).get("region")
            if region and (row["method"], row["domain"]) not in shown:
                shown.add((row["method"], row["domain"]))
                how = (f"control {region['control']}" if region.get("control") else
                       f"{region['rule']} rule, mu {region['mu']:.4g}, sigma "
                       f"{region['sigma']:.4g}")
                terminalreporter.write_line(
                    f"{row['method']} {row['domain']} region ({how}): {region['n_selected']} of "
                    f"{region['n_tensors']} tensors, {region['fraction_parameters']:.1%} of "
                    f"trainable parameters: {', '.join(region['selected'])}")
        from .report import format_intervals

        for line in format_intervals(self.summary["rows"]):
            terminalreporter.write_line(line)
        settings = self.unlearn.settings
        terminalreporter.write_line(
            f"Succ: pass rates of the item tests (criterion {settings.criterion}); (tok): the "
            "reference's token-level figures; PPL: paper Eq. 5; RougeL: ROUGE-L F of greedy "
            "generations against the answers")
        for path in self.summary.get("plots", []):
            terminalreporter.write_line(f"plot: {path}")
        if self.plots_error:
            terminalreporter.write_line(f"ERROR: {self.plots_error}", red=True)
        if settings.json_path is not None:
            terminalreporter.write_line(f"JSON report: {settings.json_path}")

    def _summary(self) -> dict[str, Any]:
        from .report import general_test_counts, outcomes_as_dicts, summarize

        unlearn = self.unlearn
        settings = unlearn.settings
        summary = {
            "run": {"methods": unlearn.methods, "model": settings.model, "data": settings.data,
                    "criterion": settings.criterion, "seed": settings.seed,
                    "seeds": settings.unlearn_seeds,
                    "inject": settings.inject, "device": settings.device,
                    "dtype": settings.dtype, "seconds": round(time.time() - unlearn.started, 3)},
            "rows": summarize(unlearn.outcomes, collected=unlearn.collected),
            "items": outcomes_as_dicts(unlearn.outcomes),
            "general": self.general,
            "general_tests": general_test_counts(self.general, unlearn.collected),
        }
        if settings.compare_baseline is not None:
            from .baselines import compare_with_baseline

            summary["comparison"] = compare_with_baseline(settings.cache_dir,
                                                          settings.compare_baseline, summary)
        for row in summary["rows"]:
            # What the method logged (steps, losses, MemFlex's region) is read back from the
            # cache entry, which is on this machine even when xdist workers built it.
            row["method_log"] = unlearn.method_log(row["model_cache_key"])
        verdicts = _localization_verdicts(unlearn.outcomes)
        if verdicts:
            summary["localization_verdict"] = verdicts
        self.config.hook.pytest_unlearn_update_summary(summary=summary)
        return summary


def _localization_verdicts(outcomes: list[Any]) -> dict[str, dict[str, Any]]:
    """Per domain where MemFlex ran beside at least one of its controls: the verdict of
    ``stats.localization_verdict`` on the item outcomes, as a dict with its text lines."""
    from .report import scope_values
    from .stats import CONTROLS, LOCALIZED, localization_verdict

    verdicts = {}
    for domain, prompt in dict.fromkeys((o.domain, o.prompt) for o in outcomes):
        results = {}
        for method in (LOCALIZED, *CONTROLS):
            by_seed: dict[int, list[Any]] = {}
            for outcome in outcomes:
                if (outcome.method, outcome.domain, outcome.prompt, outcome.test) == (
                        method, domain, prompt, "recall"):
                    by_seed.setdefault(outcome.seed, []).append(outcome)
            scopes = {scope: scope_values(by_seed, scope,
                                          lambda o: 1.0 if o.outcome == "passed" else 0.0)
                      for scope in ("unlearn", "retention")} if by_seed else {}
            if scopes and all(values is not None for values in scopes.values()):
                results[method] = scopes
        if LOCALIZED in results and len(results) > 1:
            verdict = localization_verdict(results)
            name = domain if prompt == DEFAULT_PROMPT else f"{domain}, prompt {prompt}"
            verdicts[name] = {**verdict.to_dict(), "lines": verdict.lines()}
    return verdicts


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
        from .distributed import main_process

        if self.config.get_verbosity() < 0 or _is_worker(self.config) or not main_process():
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
