"""The report of ``benchmarks/device_check.sh``: each benchmark's GPU time as a ratio to its CPU time, same run.

Usage: ``python benchmarks/device_report.py OUT_DIR cpu [cuda]``. Reads, per device, ``DEVICE.json``
(pytest-benchmark's ``--benchmark-json``) and ``DEVICE.ratios.json`` (advdla's in-run ratios, written by
benchmarks/conftest.py), writes ``device_check.json`` and ``device_check.md`` into OUT_DIR and prints the path of
the markdown. Times are each benchmark's minimum (the least-disturbed round); with one device, the table holds
its times only (a dry run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _times(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {b["fullname"].split("/")[-1]: float(b["stats"]["min"]) for b in data.get("benchmarks", [])}


def _ratios(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"ratios": [], "threads": None}


def build(out: Path, devices: list[str]) -> dict:
    times = {d: _times(out / f"{d}.json") for d in devices}
    ratios = {d: _ratios(out / f"{d}.ratios.json") for d in devices}
    base, other = devices[0], devices[1] if len(devices) > 1 else None
    rows = []
    for name, t in times[base].items():
        row = {"benchmark": name, f"{base}_s": t}
        if other is not None and name in times[other]:
            row[f"{other}_s"] = times[other][name]
            row[f"{other}/{base}"] = times[other][name] / t
        rows.append(row)
    return {"devices": devices, "model": ratios[base].get("model"),
            "threads": {d: ratios[d].get("threads") for d in devices}, "benchmarks": rows,
            "in_run_ratios": {d: ratios[d]["ratios"] for d in devices}}


def markdown(report: dict) -> str:
    devices = report["devices"]
    cols = list(report["benchmarks"][0]) if report["benchmarks"] else ["benchmark"]
    lines = [f"# advdla device check ({', '.join(devices)}; model {report['model']})", "",
             f"CPU threads: {report['threads']}. Times: each benchmark's minimum over its rounds.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report["benchmarks"]:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |")
    for device, ratios in report["in_run_ratios"].items():
        lines += ["", f"## In-run ratios on {device}", "", "| group | ratio | value | goal |", "|---|---|---|---|"]
        lines += [f"| {r['group']} | {r['what']} | {r['value']:.3g} | {r['goal']} |" for r in ratios]
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv: list[str]) -> int:
    out, devices = Path(argv[0]), argv[1:]
    report = build(out, devices)
    (out / "device_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "device_check.md").write_text(markdown(report))
    print(out / "device_check.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
