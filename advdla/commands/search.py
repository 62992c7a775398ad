"""``advdla search --model NAME --target L0H2|auto``: find prompts where the target's DLA overstates its effect.

Writes OUT/examples.parquet (verified examples) and OUT/search.json (config, thresholds, counts, sampler
share, timings); the Optuna study lives in OUT/study.db unless ``--storage URL --study NAME`` names a shared
one (sqlite:///PATH, postgresql://user:pw@host/db, or journal:PATH), so running the same command again
resumes it and several workers can share it.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Any

from advdla.atomic import check_writable, nan_to_none, removed_on_failure
from advdla.errors import AdvdlaError
from advdla.progress import Step
from advdla.report import add_format_arg, add_precision_arg, device, emit, err_console, progress_bar

# advdla.models (and what uses it) imports torch: imported inside the commands, so `advdla --help` starts fast


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("search", help="search for prompts on which DLA overstates a component's effect")
    p.add_argument("--model", default=None,
                   help="registry name, HF hub name or local directory (default: smollm2-135m)")
    p.add_argument("--target", default="auto", help="component L<l>H<h> or MLP<l>, or auto (default: auto)")
    p.add_argument("--trials", type=int, default=200,
                   help="stop when the study holds this many complete trials (default: 200)")
    p.add_argument("--batch", type=int, default=16, help="candidates scored per batched evaluation (default: 16)")
    p.add_argument("--sampler", default="tpe", help="tpe (default), nsga2 (multi-objective) or random (baseline)")
    p.add_argument("--objective", default="compensation",
                   help="the gap to open: compensation (default: DE - TE, with DE at least 30% of LD: later "
                        "components undo a real direct effect), dla (DLA - TE, the paper's), baseline (DLA - DE)")
    p.add_argument("--resamples", type=int, default=8, help="R same-length resamples per TE (default: 8)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="tokens per candidate (default: 24, or on a model with a context under 48 the largest length "
                        "whose pre-screen windows of 2 x --seq-len fit)")
    p.add_argument("--seed", type=int, default=0, help="seed for the space, resamples and sampler (default: 0)")
    p.add_argument("--max-verify", type=int, default=32,
                   help="re-verify at most this many candidates on the slow path (default: 32)")
    p.add_argument("--verify-resamples", type=int, default=8,
                   help="fresh resamples for the re-verification (default: 8)")
    p.add_argument("--max-examples", type=int, default=None, help="also stop once the study holds this many examples")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL shared by workers (default: sqlite:///OUT/study.db)")
    p.add_argument("--study", default=None, help="study name in the storage (default: advdla-search)")
    p.add_argument("--out", default="advdla-search", help="output directory (default: ./advdla-search)")
    p.add_argument("--corpus", default="builtin",
                   help="text source for base windows and resamples (default: builtin)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_precision_arg(p, "candidates are scored in")
    p.add_argument("--n-gcg", type=int, default=2,
                   help="gradient-ranked token swaps per candidate (GCG-style, per context and position; default: 2)")
    p.add_argument("--gcg-k", type=int, default=16, help="swap tokens ranked per context and position (default: 16)")
    p.add_argument("--yield", dest="yield_", action="store_true",
                   help="measure yield instead: TPE, random search and unmanipulated corpus windows at --trials "
                        "candidates each, per seed and objective; verified examples per 100 candidates with intervals")
    p.add_argument("--seeds", default="0,1,2", help="with --yield: comma-separated seeds (default: 0,1,2)")
    p.add_argument("--objectives", default=None,
                   help="with --yield: comma-separated objectives (default: the --objective)")
    add_format_arg(p)
    p.set_defaults(func=cmd_search)


def cmd_search(args: Any) -> int:
    from advdla.models import DEFAULT_MODEL, load_model
    from advdla.search import SearchConfig, open_storage, run_search, validate

    config = SearchConfig(target=args.target, objective=args.objective, trials=args.trials, batch=args.batch,
                          sampler=args.sampler, resamples=args.resamples,
                          seq_len=SearchConfig.seq_len if args.seq_len is None else args.seq_len, seed=args.seed,
                          max_examples=args.max_examples, corpus=args.corpus, max_verify=args.max_verify,
                          verify_resamples=args.verify_resamples, n_gcg=args.n_gcg, gcg_k=args.gcg_k,
                          precision=args.precision)
    validate(config)  # fail on a bad budget or sampler before loading a model
    for flag, value in (("--threads", args.threads), ("--max-examples", args.max_examples)):
        if value is not None and value < 1:
            raise AdvdlaError(f"{flag} must be at least 1, got {value}")
    check_writable(args.out, flag="--out")  # before anything is created
    if args.storage and _storage_file(args.storage):  # a file storage is created by the search, not before it
        check_writable(_storage_file(args.storage), flag="--storage", kind="file")
    elif args.storage:
        open_storage(args.storage)  # and on an unreachable storage
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with _bar(args, transient=True) as tick:
        bridge = load_model(args.model or DEFAULT_MODEL, device=args.device, progress=tick)
    if args.seq_len is None:
        config = _fit_default_length(bridge, config)
    if bridge.cfg.d_vocab < config.pool_size:
        raise AdvdlaError(f"the model's vocabulary of {bridge.cfg.d_vocab} tokens is smaller than the search's pool "
                          f"of {config.pool_size} candidate tokens per slot: search a model with a larger vocabulary")
    if args.yield_:
        return _yield(args, bridge, config)
    with removed_on_failure(args.out), _bar(args) as tick:  # a refused search leaves no fresh study behind
        result = run_search(bridge, config, out_dir=args.out, storage=args.storage, study_name=args.study,
                            progress=tick)
    emit(result.summary, args.format, tables=_tables(result))
    return 0


def _fit_default_length(bridge: Any, config: Any) -> Any:
    """The config with the default --seq-len shortened, with a note, where its pre-screen windows (2 x --seq-len)
    would not fit the model's context."""
    from advdla.attribution import fit_length
    from advdla.search import validate

    fitted = fit_length(bridge, config.seq_len, per_unit=2)
    if fitted == config.seq_len:
        return config
    err_console.print(f"advdla search: note: the default --seq-len {config.seq_len} needs {2 * config.seq_len} "
                      f"positions for the pre-screen's windows and the model has {bridge.cfg.n_ctx}: using --seq-len "
                      f"{fitted}", highlight=False, markup=False, soft_wrap=True)
    config = dataclasses.replace(config, seq_len=fitted)
    validate(config)  # a context too short for any search stops here
    return config


def _yield(args: Any, bridge: Any, config: Any) -> int:
    """``--yield``: :func:`advdla.search.yields.measure_yield` into OUT (yield.csv, one search folder per arm)."""
    from advdla.search.objectives import check_objective
    from advdla.search.yields import measure_yield, summarise

    try:
        seeds = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        raise AdvdlaError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    objectives = [check_objective(o) for o in (args.objectives or args.objective).split(",")]
    with removed_on_failure(args.out), _bar(args, transient=True) as tick:
        def note(msg: str) -> None:
            if tick:
                tick(Step("yield", done=0, total=None, info=msg))

        frame = measure_yield(bridge, config, seeds=seeds, objectives=objectives, out_dir=args.out, note=note)
    rows = summarise(frame)
    emit(nan_to_none({"yield": rows, "runs": frame.to_dict("records")}), args.format, tables=[
        (f"yield: verified examples per 100 candidates, target {frame.target.iloc[0]}, seeds {args.seeds}",
         [_yield_row(r) for r in rows])])
    return 0


def _ratio(r: dict[str, Any], key: str) -> str:
    return f"{r[key]:.1f}x [{r[key + '_ci'][0]:.1f}, {r[key + '_ci'][1]:.1f}]" if key in r else ""


def _yield_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"objective": r["objective"], "arm": r["arm"], "candidates": r["candidates"], "verified": r["verified"],
            "per 100 [95% CI]": f"{r['per_100']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            "per seed": ", ".join(map(str, r["per_seed"])), "documents per 100": round(r["docs_per_100"], 2),
            "vs random": _ratio(r, "x_random"), "vs natural": _ratio(r, "x_natural")}


def _storage_file(url: str) -> str | None:
    """The file of a sqlite:///PATH or journal:PATH storage (None for a server)."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            return url.removeprefix(prefix)
    return None


def _bar(args: Any, *, transient: bool = False) -> Any:
    """A progress bar on stderr (the callback run_search and load_model report to), or none with --no-progress."""
    return nullcontext(None) if args.no_progress else progress_bar(transient=transient)


def _tables(result: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    s = result.summary
    c = s["counts"]
    overview = [{"target": s["target"], "objective": s["objective"], "trials": c["study_complete_trials"],
                 "adversarial (fast)": c["study_adversarial_fast"], "verified": c["verified_examples"],
                 "rejected": c["rejected_on_verify"], "per 100": round(c["adversarial_per_100_candidates"], 2),
                 "sampler share": round(s["sampler_share"], 3), "cand/s": round(s["timings"]["candidates_per_s"], 2)}]
    rows = [{"trial": r.trial, "text": repr(r.text[-48:]), "t1/t2": f"{r.t1_str!r}/{r.t2_str!r}", "LD": r.ld,
             "DLA": r.dla, "DE": r.de_mean, "TE": f"{r.te_mean:.3f} ± {r.te_std:.3f}", "DLA share": r.dla_share,
             "DE share": r.de_share, "TE share": r.te_share, "mechanism": r.mechanism}
            for r in result.examples.head(10).itertuples()]
    return [(f"advdla search: {s['model']}, target {s['target']} -> {result.out_dir}", overview),
            ("examples (best first, verified on the slow path)", rows)]
