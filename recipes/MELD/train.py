#!/usr/bin/env python3
"""Recipe: emotion recognition in MELD conversations with an emotion
speech-LLM and Dynamic Parameter Memory (DPM).

Stages: data preparation (dialogue-aware manifests) → speech units (Whisper
frames, k-means codebook fitted on the training split) → training of the
fixed LoRA and new token rows → evaluation per dialogue with every context
strategy of ``test_strategies`` (utterance, one pass, sliding window, DPM).

To run this recipe, do the following:
> python train.py hparams/dpm.yaml --data_folder /path/to/MELD.Raw

Authors
 * speechbrain_dpm developers 2026
"""

import os
import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_dpm.recipe import run_recipe


def main(argv):
    """Runs the recipe (see the module docstring)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    from meld_prepare import prepare_meld

    if not hparams["skip_prep"]:
        run_on_main(
            prepare_meld,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["save_folder"],
                "n_classes": hparams["n_classes"],
            },
        )
    run_recipe(hparams, run_opts, corpus="MELD")


if __name__ == "__main__":
    main(sys.argv[1:])
    # gloo can abort at interpreter exit after all work is done; leave
    # cleanly instead (see README, DDP).
    sys.stdout.flush()
    sys.stderr.flush()
    if "RANK" in os.environ:
        os._exit(0)
