"""Collection: resolving --unlearn-method once every conftest of the run could register its
methods, then parametrizing the suites' tests.

Each test that takes ``knowundo_item`` is parametrized by method, seed, domain, prompt
variant and val item (its ``knowundo`` marker names the domain and, optionally, the scope);
each test that takes ``general_task``, by method, seed, domain and lm-eval task (its
``general_task`` marker). Every selected item test is labelled before it runs, so that even
a setup error is counted in the report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .errors import UnlearnError
from .outcomes import item_labels
from .session import SESSION_KEY, UnlearnSession
from .vocabulary import ATTACK, DEFAULT_PROMPT, DOMAINS, LEAK, QUANT4, QUANT8, RECALL, SCOPES

DOMAIN_MARKER = "knowundo"
GENERAL_MARKER = "general_task"
QUANTIZED_MARKER = "quantized"
PRIVACY_LEAK_MARKER = "privacy_leak"
MARKERS = {
    DOMAIN_MARKER: "(domain, scope=None): the KnowUnDo domain (privacy or copyright) and "
    "optionally the scope (unlearn or retention) whose val items parametrize the "
    "tests that take the knowundo_item fixture",
    GENERAL_MARKER: "(domain='privacy', thresholds='thresholds.yaml'): a general-ability "
    "test, one per lm-eval task (--unlearn-general-tasks) and method, on the "
    "unlearned model of the domain, with thresholds from the YAML file next "
    "to it",
    ATTACK: ": an item test on the model after the relearning attack (--unlearn-attack); its "
    "pass rate is attack_unlearn_success",
    LEAK: ": an item test of the model's greedy and sampled generations "
    "(--unlearn-leak-samples); its pass rate is leak_success",
    QUANT8: ": an item test on the model after 8-bit weight quantization (RTN, group 128); "
    "its pass rate is quant8_unlearn_success",
    QUANT4: ": an item test on the model after 4-bit weight quantization (RTN, group 128); "
    "its pass rate is quant4_unlearn_success",
    QUANTIZED_MARKER: ": the quantized item tests (quant8 and quant4), to select them",
    PRIVACY_LEAK_MARKER: ": a membership-inference test per method and domain: |PrivLeak| "
    "against the oracle (docs/privacy.md) within the bound",
}
# The property that labels a membership (privacy_leak) test in its reports.
MEMBERSHIP_LABEL = "unlearn_membership"
REGISTER_HOOK = "pytest_unlearn_register_methods"


# --- the methods, resolved before any test is parametrized by them --------------------------


def resolve_methods(config: pytest.Config) -> None:
    """Resolve --unlearn-method. When a name (or 'all') may come from a conftest that pytest
    loads only as it collects its folder, every conftest under the run's paths is loaded
    first, so that it registers its methods."""
    unlearn = config.stash[SESSION_KEY]
    failed: list[str] = []
    try:
        if unlearn.needs_every_conftest():
            failed = _load_every_conftest(config)
            ask_for_registrations(config)
        unlearn.resolve_methods()
    except UnlearnError as error:
        note = "".join(
            f" (a conftest that failed to import may register it: {each})" for each in failed
        )
        raise pytest.UsageError(f"{error}{note}") from None


def ask_for_registrations(config: pytest.Config) -> None:
    """Call ``pytest_unlearn_register_methods`` of every plugin and conftest that implements
    it and has not been asked yet (each is asked once)."""
    unlearn = config.stash[SESSION_KEY]
    implementers = [impl.plugin for impl in getattr(config.hook, REGISTER_HOOK).get_hookimpls()]
    new = [
        plugin
        for plugin in implementers
        if not any(plugin is asked for asked in unlearn.asked_plugins)
    ]
    if not new:
        return
    asked = [plugin for plugin in implementers if all(plugin is not each for each in new)]
    try:
        config.pluginmanager.subset_hook_caller(REGISTER_HOOK, remove_plugins=asked)(
            registry=unlearn.registry
        )
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None
    unlearn.asked_plugins.extend(new)


def check_methods_are_final(config: pytest.Config) -> None:
    """After collection every conftest of the run is loaded: a method it registered too late
    to be parametrized is an error that says so, never a method silently left out of
    'all'."""
    unlearn = config.stash[SESSION_KEY]
    ask_for_registrations(config)
    try:
        final = unlearn.resolve_names(unlearn.settings.methods)
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None
    late = [name for name in final if name not in unlearn.methods]
    if late:
        origins = "; ".join(map(unlearn.registry.origin, late))
        raise pytest.UsageError(
            f"method(s) {', '.join(map(repr, late))} ({origins}) registered after the tests "
            f"were parametrized by --unlearn-method={','.join(unlearn.settings.methods)}, so "
            "they would have been left out. Register them in a conftest.py under the paths "
            "pytest is given (or above them), or in an installed package's "
            "'pytest_unlearn.methods' entry point."
        )


def _load_every_conftest(config: pytest.Config) -> list[str]:
    """Load the conftest.py of every folder pytest would collect under the run's paths, as
    pytest itself does before it collects a folder (``_pytest/runner.py``); folders it
    ignores (--ignore, norecursedirs, virtual environments) are skipped the same way. A
    conftest that fails to import is left to pytest, which reports it as the folder's
    collection error; it is returned, for the message of a method name it might hold."""
    failed = []
    for argument in config.args:
        path = config.invocation_params.dir / argument.split("::")[0]
        if path.is_file():
            path = path.parent
        if not path.is_dir():
            continue  # a --pyargs module name: its package is loaded as pytest collects it
        for folder, subfolders, files in os.walk(path):
            here = Path(folder)
            subfolders[:] = sorted(
                name
                for name in subfolders
                if not config.hook.pytest_ignore_collect(collection_path=here / name, config=config)
            )
            if "conftest.py" not in files:
                continue
            try:
                config.pluginmanager._loadconftestmodules(
                    here,
                    config.getoption("importmode"),
                    rootpath=config.rootpath,
                    consider_namespace_packages=config.getini("consider_namespace_packages"),
                )
            except Exception as error:  # ConftestImportFailure, reported by collection
                failed.append(f"{here / 'conftest.py'}: {error}")
    return failed


# --- parametrization ------------------------------------------------------------------------


def parametrize(metafunc: pytest.Metafunc) -> None:
    """``pytest_generate_tests``: the item tests and the general-task tests."""
    if "general_task" in metafunc.fixturenames:
        _parametrize_general(metafunc)
    elif "privacy_leak_result" in metafunc.fixturenames:
        _parametrize_membership(metafunc)
    elif "knowundo_item" in metafunc.fixturenames:
        _parametrize_items(metafunc)


def _parametrize_items(metafunc: pytest.Metafunc) -> None:
    unlearn = metafunc.config.stash[SESSION_KEY]
    domain, scope = _domain_of(metafunc)
    try:
        items = [
            item
            for item in unlearn.domain_data(domain).items()
            if scope is None or item.scope == scope
        ]
    except UnlearnError as error:
        raise pytest.Collector.CollectError(str(error)) from None
    if "unlearn_method" in metafunc.fixturenames:
        metafunc.parametrize("unlearn_method", unlearn.methods, indirect=True, scope="session")
    _parametrize_seeds(metafunc, unlearn)
    metafunc.parametrize("unlearn_domain", [domain], indirect=True, scope="session")
    prompts = unlearn.settings.prompts
    if prompts != (DEFAULT_PROMPT,) and "unlearn_prompt" in metafunc.fixturenames:
        # Function scope: the model does not depend on the prompt, so pytest keeps the
        # tests of one model together and each model is loaded once for every variant.
        metafunc.parametrize("unlearn_prompt", prompts, ids=list(prompts))
    metafunc.parametrize(
        "knowundo_item",
        items,
        indirect=True,
        ids=[f"{item.scope}-{item.index:03d}" for item in items],
    )


def _parametrize_general(metafunc: pytest.Metafunc) -> None:
    """One test per general task and method, on the unlearned model of the marker's domain."""
    unlearn = metafunc.config.stash[SESSION_KEY]
    marker = metafunc.definition.get_closest_marker(GENERAL_MARKER)
    domain = marker.kwargs.get("domain", "privacy") if marker else "privacy"
    if marker is None or domain not in DOMAINS or set(marker.kwargs) - {"domain", "thresholds"}:
        raise pytest.Collector.CollectError(
            f"{metafunc.definition.nodeid} takes general_task: mark it "
            f"@pytest.mark.{GENERAL_MARKER}(domain='privacy', thresholds='thresholds.yaml') "
            f"(domain one of {', '.join(DOMAINS)})"
        )
    unlearn.general_domains.add(domain)
    tasks = unlearn.general_task_names()
    metafunc.parametrize("unlearn_method", unlearn.methods, indirect=True, scope="session")
    _parametrize_seeds(metafunc, unlearn)
    metafunc.parametrize("unlearn_domain", [domain], indirect=True, scope="session")
    metafunc.parametrize("general_task", tasks, ids=tasks)


def _parametrize_membership(metafunc: pytest.Metafunc) -> None:
    """One membership test per method, seed and the knowundo marker's domain."""
    unlearn = metafunc.config.stash[SESSION_KEY]
    domain, _ = _domain_of(metafunc)
    metafunc.parametrize("unlearn_method", unlearn.methods, indirect=True, scope="session")
    _parametrize_seeds(metafunc, unlearn)
    metafunc.parametrize("unlearn_domain", [domain], indirect=True, scope="session")


def _parametrize_seeds(metafunc: pytest.Metafunc, unlearn: UnlearnSession) -> None:
    """With --unlearn-seeds N > 1, one test per seed too (ids ``seed0``, ``seed1``, ...)."""
    seeds = unlearn.settings.unlearn_seeds
    if len(seeds) > 1 and "unlearn_seed" in metafunc.fixturenames:
        # Direct: the values replace the unlearn_seed fixture's.
        metafunc.parametrize(
            "unlearn_seed", seeds, scope="session", ids=[f"seed{seed}" for seed in seeds]
        )


def _domain_of(metafunc: pytest.Metafunc) -> tuple[str, str | None]:
    """The (domain, scope) of a knowundo marker; scope None means both scopes."""
    marker = metafunc.definition.get_closest_marker(DOMAIN_MARKER)
    where = metafunc.definition.nodeid
    if marker is None or len(marker.args) != 1 or set(marker.kwargs) - {"scope"}:
        raise pytest.Collector.CollectError(
            f"{where} takes knowundo_item but has no @pytest.mark.{DOMAIN_MARKER}(DOMAIN) "
            f"marker (optionally with scope='unlearn' or scope='retention'); mark the test or "
            f"its module, e.g. pytestmark = pytest.mark.{DOMAIN_MARKER}('privacy')"
        )
    domain, scope = marker.args[0], marker.kwargs.get("scope")
    if domain not in DOMAINS:
        raise pytest.Collector.CollectError(
            f"{where}: @pytest.mark.{DOMAIN_MARKER}({domain!r}) names no domain; the domains "
            f"are {', '.join(DOMAINS)}"
        )
    if scope is not None and scope not in SCOPES:
        raise pytest.Collector.CollectError(
            f"{where}: @pytest.mark.{DOMAIN_MARKER}(scope={scope!r}) names no scope; the "
            f"scopes are {', '.join(SCOPES)}"
        )
    return domain, scope


# --- the selected tests -------------------------------------------------------------------------


def follow_the_item_domains(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """``suites/general`` tests the models of each domain. Run beside item tests (e.g.
    ``pytest suites/privacy suites/general``), its tests of the domains that have no item
    test in the run are deselected, so that no model is built for a domain the run does not
    test; run alone, it tests every domain it names. Returns the line that says so."""

    def domain_of(item: pytest.Item, fixture: str) -> str | None:
        params = _params(item)
        return str(params["unlearn_domain"]) if fixture in params else None

    item_domains = {domain for item in items if (domain := domain_of(item, "knowundo_item"))}
    if not item_domains:
        return []
    dropped = [
        item for item in items if domain_of(item, "general_task") not in (None, *item_domains)
    ]
    if not dropped:
        return []
    config.hook.pytest_deselected(items=dropped)
    dropped_ids = set(map(id, dropped))
    items[:] = [item for item in items if id(item) not in dropped_ids]
    domains = sorted({str(domain_of(item, "general_task")) for item in dropped})
    return [
        f"unlearn: {len(dropped)} general-task tests of {', '.join(domains)} deselected: "
        f"this run has item tests of {', '.join(sorted(item_domains))} only (add suites/"
        f"{domains[0]} to test them, or run suites/general alone for every domain)"
    ]


def collected_tests(items: list[pytest.Item]) -> list[tuple[str, str, str, str, str]]:
    """(method, domain, prompt, test kind, scope) of every selected item and general-task
    test, one entry each: the gate compares what reported with what was collected."""
    collected = []
    for item in items:
        params = _params(item)
        if "unlearn_method" not in params:
            continue
        if "knowundo_item" in params:
            collected.append(
                (
                    params["unlearn_method"],
                    params["knowundo_item"].domain,
                    params.get("unlearn_prompt", DEFAULT_PROMPT),
                    kind_of_test(item),
                    params["knowundo_item"].scope,
                )
            )
        elif "general_task" in params:
            collected.append(
                (params["unlearn_method"], params["unlearn_domain"], "", "general", "")
            )
    return collected


def label(item: pytest.Item, default_seed: int) -> None:
    """The properties that name an item or general-task test in its reports."""
    params = _params(item)
    seed = params.get("unlearn_seed", default_seed)
    if "privacy_leak_result" in getattr(item, "fixturenames", ()) and "unlearn_method" in params:
        item.user_properties.extend(
            [
                (MEMBERSHIP_LABEL, True),
                ("unlearn_method", params["unlearn_method"]),
                ("unlearn_domain", params["unlearn_domain"]),
                ("unlearn_seed", seed),
            ]
        )
    if "general_task" in params and "unlearn_method" in params:
        item.user_properties.extend(
            [
                ("unlearn_method", params["unlearn_method"]),
                ("unlearn_domain", params["unlearn_domain"]),
                ("unlearn_seed", seed),
                ("general_task", params["general_task"]),
            ]
        )
    if "knowundo_item" in params and "unlearn_method" in params:
        knowundo = params["knowundo_item"]
        item.user_properties.extend(
            item_labels(
                params["unlearn_method"],
                knowundo.domain,
                knowundo.scope,
                seed,
                params.get("unlearn_prompt", DEFAULT_PROMPT),
                kind_of_test(item),
                knowundo.id,
            )
        )


def kind_of_test(item: pytest.Item) -> str:
    """What an item test checks: after relearning (``attack``), in generations (``leak``)
    or teacher-forced, the paper's metrics (``recall``)."""
    for kind in (ATTACK, LEAK, QUANT8, QUANT4):
        if item.get_closest_marker(kind) is not None:
            return kind
    return RECALL


def _params(item: pytest.Item) -> dict[str, Any]:
    return getattr(getattr(item, "callspec", None), "params", {})
