"""advdla: find prompts on which direct logit attribution lies, package them with causal ground truth,
and score attribution methods against that truth.

The data flow (see DESIGN.md): model -> corpus -> analysis -> search -> ground truth -> suite -> methods
-> scores -> leaderboard. Each step is a plain Python call; :mod:`advdla.cli` only wires them.
"""

__version__ = "0.1.0"
