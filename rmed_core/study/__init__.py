"""The study: the paper's published numbers, the units of comparison, the verdict rules and their
simulated error rates, the premise, and the grids of runs the experiment chapters read. Everything
here is recomputed from stored results at every read; nothing trains (that is :mod:`rmed_core.runs`).

* :mod:`~rmed_core.study.published` -- the one public table of the paper and the iterations it is
  at; this project's claims beside it.
* :mod:`~rmed_core.study.units` -- per-tensor log-ratios of two optimizers paired by seed, and R_med
  per tensor with its two parts (maximum, median).
* :mod:`~rmed_core.study.verdict` -- what "reproduced" means: the rule (geometric-mean ratio, t-interval,
  exact sign-flip test over seeds), the control's equivalence test, the trend test.
* :mod:`~rmed_core.study.run_test` -- the trajectory study's rule: SGD-M's runs against Adam's,
  unpaired (exact permutation test over runs, Welch interval, Holm over steps and kinds), at
  matched iteration and at matched loss; its error rates by simulation.
* :mod:`~rmed_core.study.error_rates` -- the rule's false-positive rate and power, by simulation.
* :mod:`~rmed_core.study.premise` -- "Adam trains faster": final losses, tuning, matched loss.
* :mod:`~rmed_core.study.variants` -- the design variants, each read by the premise's and the claim's rules.
* :mod:`~rmed_core.study.goals` -- the benchmark goals the method chapter judges, thresholds once.
* :mod:`~rmed_core.study.experiments` -- the grids of runs each chapter reads (from the bundle or trained).
"""
from __future__ import annotations

from .published import PUBLISHED_ITERATIONS, PUBLISHED_RATIOS, claims_at, compare_with_published, published_steps
from .units import log_ratios, ratio_table, rmed_by_tensor, rmed_parts
from .run_test import RunClaim, run_claim, run_claims_by, run_means
from .variants import design_variant, variant_table
from .verdict import Claim, Equivalence, claim, claims_by_kind, equivalence, equivalence_by_kind

__all__ = ["PUBLISHED_RATIOS", "PUBLISHED_ITERATIONS", "published_steps", "compare_with_published", "claims_at",
           "log_ratios", "ratio_table", "rmed_by_tensor", "rmed_parts", "Claim", "Equivalence", "claim",
           "claims_by_kind", "equivalence", "equivalence_by_kind", "RunClaim", "run_claim", "run_claims_by", "run_means",
           "design_variant", "variant_table"]
