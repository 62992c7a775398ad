#!/usr/bin/env bash
# Build a suite from its config, verify it, score every built-in method on both splits and render the leaderboard:
# the whole path from a config to committed records, in one resumable script.
#
#   suites/build-and-score.sh CONFIG [DEVICE [METHOD.KEY=VALUE...]]
#   e.g. suites/build-and-score.sh suites/smollm2-135m-erasure.yaml cuda
#        suites/build-and-score.sh suites/smollm2-135m-erasure.yaml cpu ig.steps=2
#
# DEVICE (default cpu) runs the build and the scoring there; verification re-derives a sample of the truth on the
# CPU, so a GPU build is checked against the CPU path. It runs once, before scoring; each scoring call then checks
# files, fingerprint, model and splits but re-derives no truth (--verify-sample 0: on SmolLM2 that would be about
# 100 s a call, and there are two calls per method). Each stage is skipped when its output exists (the build
# itself resumes from suites/.NAME.partial/; each method is scored on its own), so after an interruption the same
# command continues. Records go to leaderboard/incoming/NAME-SPLIT-METHOD.json before they are added to
# leaderboard/. Times and peak memory of each stage are appended to leaderboard/incoming/NAME.times. METHOD.KEY=VALUE
# options go to that method's `advdla score --param` (e.g. fewer IG steps on a large panel; each record keeps what
# its method ran with). METHODS and SPLITS (env) choose and order what is scored, e.g. the cheap methods first.
# Scoring checkpoints every batch of SCORE_BATCH examples (env, default 8), so a killed run resumes inside a method
# too; a small batch (2) suits a slow method such as IG on a large panel.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:?usage: suites/build-and-score.sh CONFIG [DEVICE]}"
device="${2:-cpu}"
shift $(( $# < 2 ? $# : 2 ))
advdla="${ADVDLA:-.venv/bin/advdla}"
python="$(dirname "$advdla")/python"
[[ -f "$config" ]] || { echo "build-and-score: no config at $config" >&2; exit 2; }
name="$(sed -n 's/^name: *//p' "$config" | head -1)"
suite="suites/$name"
mkdir -p leaderboard/incoming
times="leaderboard/incoming/$name.times"

timed() {  # timed LABEL CMD...: run CMD, append its wall time and peak memory to $times
    local label="$1"; shift
    /usr/bin/time -f "$label %e s %M KB" -a -o "$times" "$@"
}

[[ -f "$suite/manifest.json" ]] || timed "build($device)" "$advdla" suite build "$config" --device "$device"
timed "verify(cpu)" "$advdla" suite verify "$suite"
# METHODS (env, space-separated) picks and orders the methods; default: every registered one
methods="${METHODS:-$("$python" -c 'from advdla.methods import available_methods as a; print(" ".join(a()))')}"
records=()
for split in ${SPLITS:-dev test}; do
    for method in $methods; do
        out="leaderboard/incoming/$name-$split-$method.json"
        records+=("$out")
        opts=()
        for p in "$@"; do [[ "$p" == "$method".* ]] && opts+=(--param "$p"); done
        [[ -f "$out" ]] || timed "score-$split-$method($device)" "$advdla" score --suite "$suite" --split "$split" \
            --methods "$method" --device "$device" --out "$out" --format json --verify-sample 0 \
            --batch-size "${SCORE_BATCH:-8}" "${opts[@]}" >/dev/null
    done
done
"$advdla" leaderboard add "${records[@]}"
"$advdla" leaderboard render
cat "$times"
