"""Plug-ins without packaging: ``--plugin FILE.py`` / ``--plugin module`` / ``ADVDLA_PLUGINS`` register the
AttributionMethod subclasses a file defines, and the method then scores like a built-in: half of DLA ranks every
panel exactly as DLA does, so its Spearman equals DLA's on the same examples."""

from __future__ import annotations

import json
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.methods.registry import METHODS, load_plugin_modules, load_plugins, method_spec
from advdla.registry import import_plugin

pytestmark = pytest.mark.usefixtures("one_thread")
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced block after the ``<!-- marker ... -->`` comment in the README."""
    found = re.search(rf"<!-- {re.escape(marker)}[^>]*-->\s*```\w*\n(.*?)```", README.read_text(), re.S)
    assert found, f"no block after a <!-- {marker} --> marker in README.md"
    return found.group(1)


def test_the_readme_plugin_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_method.py").write_text(readme_block("plugin example"))
    commands = [shlex.split(line)[1:] for line in readme_block("plugin commands").splitlines() if line.strip()]
    try:
        for argv in commands:
            assert main(argv) == 0, argv
        shown = capsys.readouterr().out
    finally:
        METHODS.remove("half-dla")
    assert "half-dla" in shown and "scale=0.5" in shown
    records = {r["method"]["name"]: r for r in json.loads((tmp_path / "half.json").read_text())}
    assert set(records) == {"half-dla", "dla"}
    assert sorted(p.name for p in (tmp_path / "board").glob("*.json")) == [
        "planted_erasure-v3-dev-dla-v1.json", "planted_erasure-v3-dev-half_dla-v1.json"]

PLUGIN = textwrap.dedent('''
    import torch
    from advdla.attribution import dla
    from advdla.methods import AttributionMethod, ExampleBatch


    class HalfDLA(AttributionMethod):
        """DLA shrunk by half: the same ranking, half the size."""

        name = "{name}"
        version = "1"

        def __init__(self, *, seed: int = 0, scale: float = 0.5):
            super().__init__(seed=seed)
            self.scale = scale

        def attribute(self, model, batch: ExampleBatch) -> torch.Tensor:
            comps, index = batch.union()
            result = dla(model, batch.tokens, components=comps, t1=batch.t1, t2=batch.t2)
            return self.scale * batch.gather(result.values.float().cpu(), index)
''')


@pytest.fixture
def plugin_file(tmp_path, request):
    name = f"half-dla-{request.node.name[-12:].strip('[]_')}".replace("_", "-")
    path = tmp_path / f"half_{abs(hash(name))}.py"
    path.write_text(PLUGIN.format(name=name))
    yield name, path
    METHODS.remove(name)


def test_a_file_plugin_registers_and_scores_like_dla(plugin_file, monkeypatch, capsys):
    name, path = plugin_file
    assert load_plugin_modules([str(path)]) == [name]
    assert method_spec(name).source == f"plug-in {path}" and method_spec(name).description.startswith("DLA shrunk")
    assert load_plugin_modules([str(path)]) == []  # a second import adds nothing
    rc = main(["score", "--suite", "planted-erasure", "--methods", f"dla,{name}", "--limit", "6", "--verify-sample",
               "0", "--plugin", str(path), "--format", "json"])
    assert rc == 0
    records = {r["method"]["name"]: r for r in json.loads(capsys.readouterr().out)["records"]}
    assert records[name]["method"]["params"]["scale"] == 0.5
    spearman = {n: {m["kind"]: m["value"] for m in r["metrics"] if m["metric"] == "spearman"}
                for n, r in records.items()}
    assert spearman[name] == pytest.approx(spearman["dla"], abs=1e-12)


def test_methods_info_shows_a_plugin_from_the_environment(plugin_file, monkeypatch, capsys):
    name, path = plugin_file
    monkeypatch.setenv("ADVDLA_PLUGINS", str(path))
    assert main(["methods", "info", name, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["params"] == {"scale": 0.5} and shown["cost"] == "forward"


def test_a_module_name_is_found_in_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "my_advdla_plugin_mod.py").write_text(PLUGIN.format(name="half-dla-module"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert load_plugin_modules(["my_advdla_plugin_mod"]) == ["half-dla-module"]
    finally:
        METHODS.remove("half-dla-module")
        sys.modules.pop("my_advdla_plugin_mod", None)


def test_a_broken_plugin_is_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(AdvdlaError, match=r"failed to import: RuntimeError: no GPU here"):
        import_plugin(str(bad))
    with pytest.raises(AdvdlaError, match="no module named 'no_such_plugin_module'"):
        import_plugin("no_such_plugin_module")
    monkeypatch.setenv("ADVDLA_PLUGINS", str(bad))
    assert any("ADVDLA_PLUGINS" in line and "no GPU here" in line for line in load_plugins())
