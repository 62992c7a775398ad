"""advdla: find prompts on which direct logit attribution lies, package them with causal ground truth,
and score attribution methods against that truth.

The data flow: model -> corpus -> analysis -> search -> suites (ground truth) -> methods -> scoring ->
leaderboard. Each step is a plain Python call; the face (:mod:`advdla.cli`, :mod:`advdla.commands`,
:mod:`advdla.pipeline`, :mod:`advdla.report`) wires them and is the only part that prints.
"""

__version__ = "0.1.0"
