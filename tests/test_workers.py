"""One GPU per xdist worker and a share of the CPU cores each (pytest_unlearn.workers);
without GPUs, the GPU environment is faked."""

from __future__ import annotations

import os

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.workers import pin_worker_gpu, share_cpu_threads, visible_gpus


def test_workers_take_the_visible_gpus_in_turn() -> None:
    given = []
    for worker in ("gw0", "gw1", "gw2", "gw3", "gw4"):
        environ = {"CUDA_VISIBLE_DEVICES": "2,3,5"}
        given.append(pin_worker_gpu(worker, "auto", environ))
        assert environ["CUDA_VISIBLE_DEVICES"] == given[-1]
    assert given == ["2", "3", "5", "2", "3"]


def test_explicit_list_off_and_nothing_to_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    environ: dict[str, str] = {}
    assert pin_worker_gpu("gw1", "0,1", environ) == "1" and environ == {"CUDA_VISIBLE_DEVICES": "1"}
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert pin_worker_gpu("gw1", "off", environ) is None
    assert environ == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert pin_worker_gpu("master", "auto", environ) is None  # not an xdist worker
    # No CUDA_VISIBLE_DEVICES and no nvidia-smi: no GPU, nothing set.
    monkeypatch.setattr("shutil.which", lambda name: None)
    environ = {}
    assert visible_gpus(environ) == [] and pin_worker_gpu("gw0", "auto", environ) is None
    assert environ == {}
    with pytest.raises(UnlearnError, match="--unlearn-worker-gpus='first': give 'auto'"):
        pin_worker_gpu("gw0", "first", {})


def test_xdist_workers_get_their_gpu(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("""
        import os

        import pytest


        @pytest.mark.parametrize("index", range(8))
        def test_gpu(index, worker_id):
            expected = {"gw0": "7", "gw1": "8"}[worker_id]
            assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
        """)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--unlearn-worker-gpus=7,8", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=8)


def test_workers_share_the_cpu_cores() -> None:
    environ: dict[str, str] = {}
    assert share_cpu_threads(2, environ, cpus=16) == 8 and environ == {"OMP_NUM_THREADS": "8"}
    environ = {}
    assert share_cpu_threads(3, environ, cpus=2) == 1 and environ == {"OMP_NUM_THREADS": "1"}
    environ = {"OMP_NUM_THREADS": "3"}  # the user's choice stands
    assert share_cpu_threads(2, environ, cpus=16) is None and environ == {"OMP_NUM_THREADS": "3"}
    environ = {}  # one worker has the machine to itself
    assert share_cpu_threads(1, environ, cpus=16) is None and environ == {}


@pytest.mark.parametrize("torch_in_conftest", [False, True])
def test_xdist_workers_run_their_share_of_torch_threads(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, torch_in_conftest: bool
) -> None:
    pytest.importorskip("xdist")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if torch_in_conftest:  # torch already read its thread count when the plugin runs
        pytester.makeconftest("import torch\n")
    cores = len(os.sched_getaffinity(0))
    pytester.makepyfile(f"""
        import os

        import torch


        def test_threads():
            assert os.environ["OMP_NUM_THREADS"] == "{max(1, cores // 2)}"
            assert torch.get_num_threads() == {max(1, cores // 2)}
        """)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
