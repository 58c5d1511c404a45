"""Studies built on the recipes, run from the repository root as modules.

* ``python -m experiments.long_conversations``: the long-conversation
  experiment (the run grid in ``long_conversations.yaml``, the pooling in
  ``summary.py``);
* ``python -m experiments.context_probes``: cheap probes over its outputs.

Authors
 * speechbrain_dpm developers 2026
"""
