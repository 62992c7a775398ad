"""Reproducible on any CPU, checked on one: fresh processes that dispatch other kernels load the same weights, and
every shipped suite verifies in such a process.

A second CPU type is not needed to catch "weights tied to the CPU that built them": the kernels a process
dispatches can be switched by environment variables, and each switch changed the last bits of the generated
models when they were built from code (``ATEN_CPU_CAPABILITY=default``: torch's scalar kernels, ``randn``
included; ``MKL_CBWR=COMPATIBLE`` and ``MKL_ENABLE_INSTRUCTIONS=AVX2``: MKL's QR and matmul code paths).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advdla.models import load_model
from advdla.models.shipped import GENERATED, REBUILD_TOLERANCE, weights_file
from advdla.suites import read_manifest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "suites"
KERNELS = {
    "as-is": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}

# In the fresh process: each generated model's weights fingerprint as the registry loads it, and how far its builder
# is from the shipped file there; plus which kernels torch dispatched (so that a switch is seen to take effect).
PROBE = """
import json, torch
from advdla.models import load_model
from advdla.models.shipped import GENERATED, load_generated, max_difference
out = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(), "models": {}}
for name, gen in GENERATED.items():
    out["models"][name] = {"fingerprint": load_model(name).advdla_card.weights_fingerprint,
                           "rebuilt": max_difference(gen.build(), load_generated(name)[0])}
print(json.dumps(out))
"""


def _fresh(env: dict[str, str], threads: int, args: list[str]) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process with ``env`` added and ``threads`` intra-op threads."""
    full = {**os.environ, **env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, *args], env=full, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def here() -> dict[str, str]:
    """Each generated model's weights fingerprint in this process."""
    return {name: load_model(name).advdla_card.weights_fingerprint for name in GENERATED}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernels", list(KERNELS))
def test_generated_models_have_the_same_weights_under_every_kernel_and_thread_count(here, kernels, threads):
    done = _fresh(KERNELS[kernels], threads, ["-c", PROBE])
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["threads"] == threads
    if kernels == "aten-default":
        assert probe["capability"] == "DEFAULT"  # the switch took effect
    for name, got in probe["models"].items():
        assert got["fingerprint"] == here[name], f"{name} under {kernels}, {threads} threads"
        assert got["rebuilt"] <= REBUILD_TOLERANCE, f"{name}'s builder under {kernels}: {got['rebuilt']:.3g}"


def test_every_generated_model_ships_its_weights_and_the_shipped_suites_name_them(here):
    for name in GENERATED:
        assert weights_file(name).is_file()
    for path in sorted(SUITES.glob("planted-*/manifest.json")):
        manifest = read_manifest(path.parent)
        assert manifest["model_card"]["weights_fingerprint"] == here[manifest["model"]], path.parent.name


def _shipped(prefix: str) -> list[str]:
    return sorted(p.parent.name for p in SUITES.glob(f"{prefix}*/manifest.json"))


def _verify_in_fresh_process(name: str, kernels: str, threads: int) -> None:
    done = _fresh(KERNELS[kernels], threads,
                  ["-m", "advdla.cli", "suite", "verify", str(SUITES / name), "--sample", "1", "--format", "json"])
    assert done.returncode == 0, (done.stderr or done.stdout)[-2000:]
    assert json.loads(done.stdout)["ok"] is True


@pytest.mark.parametrize("name", _shipped("planted-"))
def test_shipped_planted_suites_verify_under_other_kernels(name):
    """torch's scalar kernels and one thread: as far from the build's process as one machine gets."""
    _verify_in_fresh_process(name, "aten-default", 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", _shipped("smollm2-"))
def test_shipped_smollm2_suites_verify_under_other_kernels(name):
    """MKL's compatible code path (every matmul's last bits change) and two threads; one example re-derived."""
    _verify_in_fresh_process(name, "mkl-compatible", 2)
