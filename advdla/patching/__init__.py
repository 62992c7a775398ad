"""Exact activation patching on the logit difference, batched, averaged over same-length resamples.

Context: DLA (:mod:`advdla.attribution`) reads what a component writes. Patching measures what it *does*:
run the prompt again with one component's activation taken from a run on an unrelated text of the same
length (a resample) and see how far the logit difference LD = logit[t1] - logit[t2] moves. advdla records,
per component c and resample r (t1, t2 fixed from the clean run):

- total effect TE(c) = LD_clean - LD with c's INPUT (its q, k, v inputs, every position) from the resample:
  the paper's causal test and the benchmark's ground truth;
- output effect OE(c) = LD_clean - LD with c's OUTPUT from the resample;
- direct effect DE(c) = LD_clean - LD with c's output from the resample on the direct path to the logits
  only (the final norm's scale frozen): the causal counterpart of DLA.

Intuition: a head's output is a function of its q, k, v inputs alone, so replacing all of them by the
resample's makes the head emit exactly its resample output. TE and OE of a head are therefore the same
number; advdla computes TE through the cheaper output path and tests it against literal input patching
(:func:`input_effects_reference`), including the grouped-query case where the k/v inputs are shared by
several heads and only the one head's own computation may be patched. If DLA(c) is large and TE(c) small,
something downstream erased what c wrote: that gap is what advdla hunts.

Speed: patch variants run along the batch dimension, and a variant that patches layer l starts from the
clean run's cached residual stream at layer l: blocks before l are skipped, not recomputed. The forward
stops at the final norm, so the unembedding is applied to two token columns at one position only.
Every fast function here has a slow reference (one plain hooked forward per patch) and a test that they
agree within 1e-5.

Layout: :mod:`~advdla.patching.forward` (the resumed, truncated forward; :class:`Effects`, :class:`Run`),
:mod:`~advdla.patching.output` (output, zero and total effects), :mod:`~advdla.patching.direct` (DE),
:mod:`~advdla.patching.truth` (TE, DE and zero TE in one pass, for ground truth), :mod:`~advdla.patching.reference`
(the slow references) and :mod:`~advdla.patching.vcomposition` (removing a writer from later components' inputs).
"""

from advdla.patching.direct import direct_effects
from advdla.patching.forward import Effects, Hook, Run, final_state, forward_from, ld_of_final, run_cached
from advdla.patching.output import output_effects, total_effects, zero_effects
from advdla.patching.reference import (
    direct_effects_reference,
    input_effects_reference,
    output_effects_reference,
    zero_effects_reference,
)
from advdla.patching.truth import truth_effects
from advdla.patching.vcomposition import v_composition_hooks

__all__ = ["Effects", "Hook", "Run", "final_state", "forward_from", "ld_of_final", "run_cached", "output_effects",
           "zero_effects", "total_effects", "direct_effects", "truth_effects", "output_effects_reference",
           "zero_effects_reference", "input_effects_reference", "direct_effects_reference", "v_composition_hooks"]
