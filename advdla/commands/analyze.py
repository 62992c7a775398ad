"""``advdla analyze --model NAME``: the paper's erasure analysis on a corpus sample (see :mod:`advdla.analysis`).

Tables (or JSON with the same content): the writers (by mean |DLA| per prompt), each writer's erasers and
strongest downstream components (PR median [q25, q75] without and with V-composition patching, DLA slope),
the residual PR by hook point, the writer-vs-eraser DLA fits, the components DLA overrates (DLA - TE), the
auto targets (compensated direct effect: ``analysis.rank_targets``) and the writer -> eraser pairs (JSON
``erasers``). ``--scan`` adds every pair found without the logit direction (``analysis.scan_erasers``).
``--plot-dir`` adds PNGs of the paper's Figures 1-4.
"""

from __future__ import annotations

from typing import Any

from advdla.components import parse_components
from advdla.errors import AdvdlaError
from advdla.progress import Step
from advdla.report import add_format_arg, device, emit, err_console, progress_bar

# advdla.models (and what uses it) imports torch: imported inside the commands, so `advdla --help` starts fast

__all__ = ["register", "cmd_analyze", "tables"]

DEFAULT_SEQ_LEN = 32  # tokens per window, where the model's context allows
SHOWN_COMPONENTS = 8  # per writer: its erasers, then the most negative PRs and DLA slopes up to this many rows


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="writers, erasers and projection ratios on a corpus sample")
    p.add_argument("--model", default=None,
                   help="registry name, HF hub name or local directory (default: smollm2-135m)")
    p.add_argument("--writer", default="auto",
                   help="writer components, comma-separated (L0H2, MLP3), or auto (default)")
    p.add_argument("--n-writers", type=int, default=4,
                   help="with --writer auto: how many writers to analyse (default: 4)")
    p.add_argument("--prompts", type=int, default=32, help="corpus windows to analyse (default: 32)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="tokens per window (default: 32, or the model's context where that is shorter)")
    p.add_argument("--resamples", type=int, default=2, help="same-length resamples for total effects (default: 2)")
    p.add_argument("--te-prompts", type=int, default=16, help="prompts used for the DLA-vs-TE ranking (default: 16)")
    p.add_argument("--overrated-top", type=int, default=12,
                   help="components (top |DLA|) ranked by DLA - TE (default: 12)")
    p.add_argument("--no-centre", dest="centre", action="store_false",
                   help="raw outputs in PR (default: centred over batch x position)")
    p.add_argument("--corpus", default="builtin", help="builtin (default), local files or an HF dataset")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--scan", action="store_true",
                   help="also scan every earlier head for erasers: centred PR of every later component onto it, "
                        "reliably negative pairs confirmed by V-composition patching")
    p.add_argument("--scan-prompts", type=int, default=16, help="prompts the --scan uses (default: 16)")
    p.add_argument("--plot-dir", default=None, help="write PNGs of the paper's Figures 1-4 here")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    add_format_arg(p)
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: Any) -> int:
    for name in ("prompts", "resamples", "te_prompts", "overrated_top", "n_writers", "scan_prompts"):
        if getattr(args, name) < 1:
            raise AdvdlaError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.plot_dir:
        from advdla.atomic import check_writable

        check_writable(args.plot_dir, flag="--plot-dir")  # before the analysis, not after it
    analysis = _run(args)
    if args.plot_dir:
        from advdla.analysis.figures import write_figures  # matplotlib: only --plot-dir pays for it

        written = write_figures(analysis, args.plot_dir)
    payload = analysis.to_dict()
    emit(payload, args.format, tables=tables(payload))
    if args.plot_dir:  # on stderr, after the tables: --format json's stdout stays one document
        err_console.print(f"advdla analyze: wrote {len(written)} figures to {args.plot_dir}: "
                          f"{', '.join(p.name for p in written)}", highlight=False, markup=False, soft_wrap=True)
    return 0


def _run(args: Any) -> Any:
    from advdla.analysis import analyze, check_writer, sample_prompts
    from advdla.models import DEFAULT_MODEL, load_model

    with progress_bar(transient=True) as tick:
        bridge = load_model(args.model or DEFAULT_MODEL, device=args.device, progress=tick)
        n_comps = bridge.cfg.n_layers * (bridge.cfg.n_heads + 1)  # heads and MLPs
        if args.writer == "auto" and args.n_writers > n_comps:
            raise AdvdlaError(f"--n-writers {args.n_writers} is more than the model's {n_comps} heads and MLPs: "
                              f"use at most {n_comps}")
        writers = (None if args.writer == "auto"
                   else [check_writer(c, bridge.cfg) for c in parse_components(args.writer, bridge.cfg)])
        tokens, resamples = sample_prompts(bridge, n=args.prompts, seq_len=_seq_len(args, bridge),
                                           resamples=args.resamples, seed=args.seed, corpus=args.corpus)
        # analyze's notes: 4 + 2 per writer (+ 2 for the scan)
        total = 4 + 2 * (len(writers) if writers else args.n_writers) + 2 * args.scan
        done = 0

        def step(msg: str) -> None:
            nonlocal done
            done += 1
            tick(Step("analysing", done=min(done, total), total=total, info=msg))

        return analyze(bridge, tokens, resamples, writers=writers, n_writers=args.n_writers, centre=args.centre,
                       overrated_top=args.overrated_top, te_prompts=args.te_prompts, seed=args.seed, step=step,
                       scan=args.scan, scan_prompts=args.scan_prompts)


def _seq_len(args: Any, bridge: Any) -> int:
    """--seq-len, or the default (32) shortened, with a note, to a context that is shorter."""
    from advdla.attribution import fit_length

    if args.seq_len is not None:
        return args.seq_len
    fitted = fit_length(bridge, DEFAULT_SEQ_LEN)
    if fitted != DEFAULT_SEQ_LEN:
        err_console.print(f"advdla analyze: note: the default --seq-len {DEFAULT_SEQ_LEN} does not fit the model's "
                          f"context of {bridge.cfg.n_ctx}: using --seq-len {fitted}", highlight=False, markup=False,
                          soft_wrap=True)
    return fitted


# ------------------------------------------------------------------------------------------- tables


def _pr_text(q: dict[str, float]) -> str:
    """A Quartiles' JSON form as one cell; its median is null (JSON's NaN) where no position was finite."""
    if q["median"] is None:
        return "nan"
    return f"{q['median']:+.3f} [{q['q25']:+.3f},{q['q75']:+.3f}]"


def tables(p: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The payload as (title, rows) tables."""
    head = f"{p['model']}: {p['prompts']} prompts x {p['seq_len']} tokens, mean |LD| {p['mean_ld']:.3g}"
    out = [(f"{head}: writers (by mean |DLA| / mean |LD|)",
            [{**w, "skipped": w["skipped"] or "-"} for w in p["writers"]])]
    for wa in p["analyses"]:
        out.append((_component_title(wa), _component_rows(wa)))
        out.append((f"{wa['writer']}: PR(residual, writer) by hook point", _residual_rows(wa)))
        out.append((f"{wa['writer']}: writer-vs-eraser DLA fits over (prompt, position)", _fit_rows(wa)))
    out.append((f"DLA overstatement (DLA - TE; {p['te_prompts']} prompts x {p['resamples']} resamples)",
                _overrated_rows(p)))
    out.append((f"auto targets: compensated direct effect (DE share high, |TE| share low; {p['te_prompts']} prompts)",
                _target_rows(p)))
    scan = p.get("scan")
    title = "writer -> eraser pairs" + (f" (scan of {scan['prompts']} prompts: {scan['pairs_confirmed']} confirmed of "
                                        f"{scan['pairs_tested']} reliably negative pairs)" if scan else "")
    out.append((title, _pair_rows(p)))
    return out


def _target_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"component": r["component"], "DLA": r["dla"], "DE": r["de"], "TE": r["te"], "DE+ share": r["de_share"],
             "|TE| share": r["te_share"], "holds": f"{r['holds']}/{r['prompts']}", "score": r["score"]}
            for r in p.get("targets", [])]


def _pair_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"writer": e["writer"], "eraser": e["eraser"], "PR median [q25, q75]": _pr_text(e["pr"]),
             "PR with V-comp": _pr_text(e["pr_vcomp"]), "recovery": _or_nan(e["recovery"]), "found by": e["source"]}
            for e in p.get("erasers", [])]


def _component_title(wa: dict[str, Any]) -> str:
    er = ", ".join(wa["erasers"]) or "none"
    comp = ", ".join(wa["compensators"]) or "none"
    warn = f" [{wa['warning']}]" if wa["warning"] else ""
    return (f"{wa['writer']} (norm {wa['norm_ratio']:.1%} of residual): erasers {er}; logit-direction compensators "
            f"{comp}{warn}")


def _component_rows(wa: dict[str, Any]) -> list[dict[str, Any]]:
    comps = wa["components"]
    by_pr = sorted(comps, key=lambda r: r["pr"]["median"])
    by_slope = sorted(comps, key=lambda r: r["dla_slope"])
    chosen, seen = [], set()
    for r in [r for r in comps if r["eraser"]] + by_pr[:SHOWN_COMPONENTS // 2] + by_slope[:SHOWN_COMPONENTS // 2]:
        if r["component"] not in seen:
            seen.add(r["component"])
            chosen.append(r)
    return [{"component": r["component"], "eraser": "yes" if r["eraser"] else "",
             "PR median [q25, q75]": _pr_text(r["pr"]), "PR with V-comp": _pr_text(r["pr_vcomp"]),
             "recovery": _or_nan(r["recovery"]),
             "DLA slope": f"{r['dla_slope']:+.3f} ± {r['dla_slope_stderr']:.3f}"} for r in chosen]


def _residual_rows(wa: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"hook point": r["label"], "PR median [q25, q75]": _pr_text(r["pr"]),
             "PR with V-comp": _pr_text(r["pr_vcomp"])}
            for r in wa["residual"]]


def _fit_rows(wa: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"y": f["y_label"], "slope": f"{f['slope']:+.3f} ± {f['slope_stderr']:.3f}",
             "intercept": f"{f['intercept']:+.3f} ± {f['intercept_stderr']:.3f}", "r": _or_nan(f["r"]), "n": f["n"]}
            for f in wa["fits"].values() if f["slope"] is not None]


def _or_nan(x: float | None) -> float:
    """The payload stores NaN as null (strict JSON); a table shows it as nan again."""
    return float("nan") if x is None else x


def _overrated_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"component": r["component"], "DLA": r["dla"], "TE": r["te"], "TE spread": r["te_std"],
             "DLA - TE": r["overstatement"], "share of |LD|": r["overstatement_share"],
             "TE / DLA": _or_nan(r["te_over_dla"])} for r in p["overrated"]]
