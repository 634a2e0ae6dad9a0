"""The pytest entry module of pytest-unlearn (``pytest11`` entry point ``unlearn``).

Imported by every pytest run in the environment, so it imports nothing heavy: torch,
transformers, peft and lm_eval are loaded inside fixtures, only when a test needs a model.

How a run goes:
  configure     options parsed and checked (bad input is a usage error, before anything
                runs); the session, the fixtures and, on the controller, the reporter
                registered (``session.py``, ``fixtures.py``, ``reporter.py``)
  sessionstart  methods registered (entry points + conftest hook), gate and baseline read
  collection    --unlearn-method resolved, then each suite test parametrized by method,
                seed, domain, prompt and item, or by general task (``collection.py``);
                with --unlearn-build-only the models are built and no test runs
                (``build_only.py``)
  tests         the fixtures build or load each model from the cache, one in memory at a
                time; each item test asserts forget or retain
  finish        outcomes become the summary (``report.py``): terminal table
                (``terminal.py``), JSON, JUnit properties, and the release gate, if any,
                decides the exit status
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator

import pytest

from . import collection, fixtures, hookspecs
from .build_only import build_models, needs_of
from .collection import MARKERS
from .distributed import launched_world_size, world
from .errors import UnlearnError
from .options import add_options, resolve
from .outcomes import record_as_expected_failure
from .registry import MethodRegistry
from .reporter import UnlearnReporter
from .session import SESSION_KEY, UnlearnSession
from .terminal import ProgressWriter
from .workers import pin_worker_gpu, share_cpu_threads


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}{description}")
    # A rebuilt cache entry, a record longer than the maximum length (long copyright
    # answers) and a weak knowledge injection are news about the run, not failures: they
    # stay warnings under -W error.
    for warning in (
        "pytest_unlearn.cache.CacheWarning",
        "pytest_unlearn.encoding.TruncationWarning",
        "pytest_unlearn.errors.InjectionWarning",
    ):
        config.addinivalue_line("filterwarnings", f"default::{warning}")
    settings = resolve(config)
    if launched_world_size() > 1:
        _join_the_launch(settings.build_only, settings.device)
    worker = getattr(config, "workerinput", None)  # set by pytest-xdist on its workers
    if worker is not None:
        try:
            pin_worker_gpu(worker["workerid"], settings.worker_gpus)
        except UnlearnError as error:
            raise pytest.UsageError(str(error)) from None
        share_cpu_threads(int(worker.get("workercount", 1)))
    unlearn = UnlearnSession(settings, ProgressWriter(config))
    config.stash[SESSION_KEY] = unlearn
    config.pluginmanager.register(fixtures, "unlearn-fixtures")
    config.pluginmanager.register(fixtures.session_fixtures(unlearn), "unlearn-session-fixtures")
    if not _is_worker(config):
        config.pluginmanager.register(UnlearnReporter(config, unlearn), "unlearn-reporter")


def _join_the_launch(build_only: bool, device: str) -> None:
    """Under accelerate launch / torchrun: join the group, and take this process's GPU,
    before any device is resolved."""
    processes = launched_world_size()
    if not build_only:
        raise pytest.UsageError(
            f"{processes} processes (WORLD_SIZE) under a launcher: add --unlearn-build-only, "
            "so that they build and score the models together; then run pytest once more "
            "without the launcher to test them from the cache (with GPUs: -n N "
            "--unlearn-worker-gpus)"
        )
    if device == "balanced":
        raise pytest.UsageError(
            f"--unlearn-device=balanced under a launcher ({processes} processes): balanced "
            "spreads one model over every GPU, while each launched process holds the whole "
            "model on its own GPU. Run one process without the launcher for balanced, or "
            "launch with --unlearn-device=auto (or cuda)."
        )
    try:
        world()
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        session.config.stash[SESSION_KEY].start(MethodRegistry.from_entry_points())
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None
    collection.ask_for_registrations(session.config)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    collection.resolve_methods(session.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    collection.parametrize(metafunc)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """General-task tests follow the domains of the selected item tests. Then, with
    --unlearn-build-only: build every model the selected tests need, and compute what they
    read from it (item scores, generations, general-task scores), then deselect them all.
    Under accelerate launch or torchrun every process takes part."""
    collection.check_methods_are_final(config)
    unlearn = config.stash[SESSION_KEY]
    unlearn.general_deselected = collection.follow_the_item_domains(config, items)
    if not unlearn.settings.build_only:
        return
    try:
        unlearn.build_report = build_models(unlearn, needs_of(items, unlearn.settings.seed))
    except UnlearnError as error:
        pytest.exit(f"--unlearn-build-only: {error}", returncode=pytest.ExitCode.TESTS_FAILED)
    config.hook.pytest_deselected(items=list(items))
    items[:] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Before the first test, build (or find in the cache) every model the selected tests
    need and compute what they read of it, so that no test's time includes a build (JUnit
    showed the whole build as the first test's duration) and progress shows from the start.
    Under xdist each worker builds its share (every worker collected every test); a build
    that fails is left to the tests that need it, which report it. Pytest's own loop then
    runs the tests."""
    config = session.config
    unlearn = config.stash[SESSION_KEY]
    if (
        unlearn.settings.build_only
        or config.option.collectonly
        or not session.items
        or (session.testsfailed and not config.option.continue_on_collection_errors)
    ):
        return
    needed = list(needs_of(session.items, unlearn.settings.seed).items())
    if _is_worker(config):
        worker = config.workerinput  # type: ignore[attr-defined]
        needed = needed[int(worker["workerid"].removeprefix("gw")) :: int(worker["workercount"])]
    if not needed:
        return
    started = time.perf_counter()
    with _warnings_reported(config):
        try:
            build_models(unlearn, dict(needed))
        except Exception:  # the tests that need the model report the error, as without this
            unlearn.progress(
                "building before the tests stopped at an error; the tests that need what was "
                "not built report it"
            )
    unlearn.build_seconds = time.perf_counter() - started


def _warnings_reported(config: pytest.Config) -> contextlib.AbstractContextManager[None]:
    """Warnings of the build before the first test (a weak injection, a truncated record)
    go to pytest's warnings summary, under the configured filters, as in a test."""
    try:
        from _pytest.warnings import catch_warnings_for_item
    except ImportError:  # pragma: no cover - pytest internals moved: Python's own display
        return contextlib.nullcontext()
    return catch_warnings_for_item(config, config.hook, when="runtest", item=None)


@pytest.hookimpl(tryfirst=True)  # before the terminal prints pytest_report_collectionfinish
def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].collected = collection.collected_tests(session.items)


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """The run's settings, once pytest collected tests of the plugin's (in every other run of
    the environment the plugin prints nothing); under xdist they open the summary."""
    unlearn = config.stash[SESSION_KEY]
    header = unlearn.settings.header_lines() if unlearn.collected else []
    return header + unlearn.general_deselected


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A build-only run that built what it had to succeeded, though it ran no test. An
    xdist worker hands what it collected to the controller, which collects nothing."""
    unlearn = session.config.stash[SESSION_KEY]
    if _is_worker(session.config):
        output = session.config.workeroutput  # type: ignore[attr-defined]
        output["unlearn_collected"] = [list(entry) for entry in unlearn.collected]
        output["unlearn_general_deselected"] = unlearn.general_deselected
        output["unlearn_build_seconds"] = unlearn.build_seconds
    if (
        unlearn.build_report is not None
        and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        session.exitstatus = pytest.ExitCode.OK


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Label each item test before its fixtures run, so even a setup error is counted."""
    collection.label(item, item.config.stash[SESSION_KEY].settings.seed)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
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
    finding = (
        excinfo is not None
        and isinstance(excinfo.value, pytest.fail.Exception)
        and not excinfo.value.pytrace
        and "knowundo_item" in getattr(item, "fixturenames", ())
    )
    if finding:
        assert excinfo is not None
        code = getattr(getattr(item, "obj", None), "__code__", None)
        traceback = excinfo.traceback
        for index, entry in enumerate(traceback):
            if entry.frame.code.raw is code:
                excinfo.traceback = traceback[index:]
                break
    report = yield
    if finding and excinfo is not None and call.when == "call" and report.failed:
        if item.config.stash[SESSION_KEY].settings.findings == "xfail":
            record_as_expected_failure(report, str(excinfo.value))
    return report


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")
