"""The leaderboard: a folder of result records, validated on the way in, ranked and judged on the way out.

Context: ``advdla score`` writes one self-describing result record per attribution method (see
:mod:`advdla.scoring`); the leaderboard is nothing but those records, one JSON file per (suite, suite version,
split, method, method version), in a folder (``leaderboard/`` in the repository), plus ``LEADERBOARD.md``
rendered from them. A record scored on a suite that has since been rebuilt (its fingerprint moved) is *stale*:
listed apart, never ranked next to current ones.

The modules, in the order they build on each other:

- :mod:`~advdla.leaderboard.records`: reading, validating and writing records (:class:`Entry`, :class:`Board`,
  :func:`add_record`, :func:`load_board`), current or stale against the suite's manifest;
- :mod:`~advdla.leaderboard.columns`: the one list of table columns (:class:`Column` in :data:`COLUMNS`);
- :mod:`~advdla.leaderboard.ranking`: each row's role (noise ceiling, method, reference row, chance) from the
  record, paired comparisons with DLA (:func:`paired`, :func:`beats`), the ranked rows of a table;
- :mod:`~advdla.leaderboard.hypotheses`: the pre-registered hypotheses a suite's verdict tests;
- :mod:`~advdla.leaderboard.verdict`: those hypotheses tested on dev and test, Holm-corrected, as sentences
  (:func:`verdict`, :func:`run_verdict`);
- :mod:`~advdla.leaderboard.chance`: the uninformed methods (``random``, ``constant``) against each metric's chance
  level over every cell of the records, one Holm-corrected check (:func:`~advdla.leaderboard.chance.check_board`);
- :mod:`~advdla.leaderboard.render`: cells, the markdown page, ``LEADERBOARD.md`` (:func:`write_markdown`).
- :mod:`~advdla.leaderboard.frontier`: the cost-accuracy frontier (seconds per example against the primary metric,
  Pareto front marked) as a PNG and as terminal lines. Not imported here: it imports matplotlib.
"""

from advdla.leaderboard.columns import COLUMNS, PRIMARY, Column, compared_pairs, register_column
from advdla.leaderboard.hypotheses import DEFAULT_HYPOTHESES, Hypothesis, hypotheses_for, registration_hash
from advdla.leaderboard.ranking import (
                                        BASELINE,
                                        ROLES,
                                        adv_vs_natural,
                                        beats,
                                        chance_row,
                                        groups,
                                        in_group,
                                        n_documents,
                                        paired,
                                        per_example,
                                        ranked_rows,
                                        role,
                                        sort_key,
)
from advdla.leaderboard.records import (
                                        GROUPS,
                                        Board,
                                        Entry,
                                        add_record,
                                        check_current,
                                        default_suites_dir,
                                        load_board,
                                        parse_record,
                                        record_filename,
                                        suite_fingerprint,
)
from advdla.leaderboard.render import (
                                        MARKDOWN_NAME,
                                        display_rows,
                                        intro,
                                        render_markdown,
                                        suite_versions,
                                        write_markdown,
)
from advdla.leaderboard.verdict import ALPHA, MIN_SOURCES, MIN_VERDICT_DOCS, evaluate_hypotheses, run_verdict, verdict

__all__ = ["Entry", "Board", "parse_record", "record_filename", "add_record", "load_board", "groups", "role",
           "paired", "beats", "ranked_rows", "display_rows", "verdict", "run_verdict", "render_markdown",
           "write_markdown", "suite_fingerprint", "check_current", "GROUPS", "PRIMARY", "BASELINE", "chance_row",
           "in_group", "default_suites_dir", "suite_versions", "Hypothesis", "DEFAULT_HYPOTHESES", "hypotheses_for",
           "registration_hash", "evaluate_hypotheses", "ALPHA", "MIN_SOURCES",
           "Column", "COLUMNS", "register_column", "compared_pairs", "ROLES", "adv_vs_natural", "n_documents",
           "per_example", "sort_key", "MARKDOWN_NAME", "intro", "MIN_VERDICT_DOCS"]
