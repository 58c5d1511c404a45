"""The recipe stages shared by the IEMOCAP and MELD recipes, after their own
data preparation: units → training → evaluation per strategy → export.

Each recipe's ``train.py`` stays thin (SpeechBrain's flow) and calls
``run_recipe`` once its corpus-specific manifests exist.

Authors
 * speechbrain_dpm developers 2026
"""

import os

import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.brain import load_dialogues
from speechbrain_dpm.dpm_training import DPMAwareBrain
from speechbrain_dpm.inference import export_model_folder
from speechbrain_dpm.metrics import results_table
from speechbrain_dpm.sllm import check_window, disable_checkpointing
from speechbrain_dpm.units import extract_units, units_manifest_path

logger = get_logger(__name__)
SPLITS = ("train", "valid", "test")


def is_synthetic(data_folder):
    """True if the corpus was made by ``speechbrain_dpm.synth``."""
    return os.path.exists(os.path.join(str(data_folder), "SYNTHETIC.txt"))


def active_strategies(hparams):
    """The rows of ``test_strategies`` to evaluate.

    Command-line overrides merge into the YAML's dict, so a row is dropped
    by setting it to ``false`` (e.g. ``--test_strategies='{dpm: false}'``).

    Example
    -------
    >>> active_strategies({"test_strategies": {"a": {}, "b": False}})
    {'a': {}}
    """
    return {
        name: opts
        for name, opts in hparams["test_strategies"].items()
        if opts is not False
    }


def check_hparams(hparams):
    """Fails early, with the key to fix, on inconsistent hparams."""
    if len(hparams["emotions"]) != hparams["n_classes"]:
        raise ValueError(
            f"emotions {hparams['emotions']} do not match "
            f"n_classes={hparams['n_classes']}"
        )
    for name, opts in active_strategies(hparams).items():
        limit = (opts or {}).get("n_limit")
        if limit is not None and limit <= (opts or {}).get("n_context", 0):
            raise ValueError(
                f"test_strategies.{name}: n_limit ({limit}) must exceed "
                "n_context (n_limit >= n_max + n_r)"
            )
        for key in ("n_limit", "max_tokens"):
            window = (opts or {}).get(key)
            check_window(hparams["sllm"].llm, window, f"{name}.{key}")
    check_window(hparams["sllm"].llm, hparams["n_ctx"], "n_ctx")


def export_model(hparams):
    """Writes the ready-to-use model folder (``hparams["export_folder"]``)
    that ``DPMEmotionRecognizer.from_hparams`` loads.

    Arguments
    ---------
    hparams : dict
        The loaded recipe hyperparameters, after training.

    Returns
    -------
    str
        The folder.
    """
    name = hparams["export_strategy"]
    rows = active_strategies(hparams)
    if name not in rows:
        logger.warning(
            "export_strategy %r is not an evaluated row of test_strategies: "
            "exported with the strategy's default options",
            name,
        )
    opts = dict(rows.get(name) or {})
    opts.pop("diagnostics", None)
    settings = {
        key: hparams[key]
        for key in (
            "encoder_source",
            "encoder_layer",
            "feat_dim",
            "n_units",
            "llm_source",
            "llm_layers",
            "audio_input",
            "audio_head",
            "audio_loss_input",
            "lora_rank",
            "lora_alpha",
            "lora_dropout",
            "lora_targets",
        )
    }
    settings.update(strategy=opts.pop("strategy", name), strategy_opts=opts)
    folder = export_model_folder(
        hparams["export_folder"],
        hparams["sllm"],
        hparams["codebook_path"],
        hparams["emotions"],
        settings,
    )
    logger.info("Exported the model for DPMEmotionRecognizer to %s", folder)
    return folder


def run_recipe(hparams, run_opts, corpus):
    """Units, training, evaluation and the results table.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (see ``recipes/*/hparams/dpm.yaml``).
    run_opts : dict
        SpeechBrain's run options.
    corpus : str
        Corpus name, for the printed table.

    Returns
    -------
    dict
        Split → strategy → metrics (empty on non-main DDP ranks).
    """
    check_hparams(hparams)
    save = hparams["save_folder"]
    manifests = {s: os.path.join(save, f"{s}.json") for s in SPLITS}
    run_on_main(
        extract_units,
        kwargs={
            "manifests": manifests,
            "encoder": hparams["frame_encoder"],
            "codebook_path": hparams["codebook_path"],
            "cache_dir": hparams["units_folder"],
            "n_units": hparams["n_units"],
            "max_fit_frames": hparams["max_fit_frames"],
            "seed": hparams["seed"],
            "progressbar": not run_opts.get("noprogressbar", False),
        },
    )
    sllm = hparams["sllm"]
    if hparams.get("training_mode") == "dpm_aware" and disable_checkpointing(
        sllm.llm
    ):
        # Its memory writes change the LoRA state between a block's forward
        # and its recomputation, which checkpointing cannot replay.
        logger.warning("gradient_checkpointing is off for dpm_aware training")
    with_feats = hparams["audio_input"] != "units"
    data = {
        split: load_dialogues(
            units_manifest_path(path),
            hparams["emotions"],
            sllm.space,
            with_feats,
        )
        for split, path in manifests.items()
    }
    # Plain training unless hparams say training_mode: dpm_aware.
    brain = DPMAwareBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    train_loader = brain.make_window_loader(
        data["train"], sb.Stage.TRAIN, **hparams["train_loader_kwargs"]
    )
    valid_loader = brain.make_window_loader(
        data["valid"],
        sb.Stage.VALID,
        ckpt_prefix=None,
        **hparams["valid_loader_kwargs"],
    )
    init = hparams.get("init_from")
    if init and hparams["checkpointer"].find_checkpoint() is None:
        # A fresh run that starts from another run's trained tensors (e.g.
        # DPM-aware fine-tuning of a plain model); a resumed run does not.
        sllm.load(init)
        logger.info("Initialised the SLLM from %s", init)
    brain.fit(hparams["epoch_counter"], train_loader, valid_loader)
    # eval_splits: [valid] (with --test_only) tunes e.g. memory_lr on the
    # validation split without touching the test split.
    results = {}
    for split in hparams["eval_splits"]:
        results[split] = brain.evaluate_strategies(
            data[split],
            active_strategies(hparams),
            out_dir=os.path.join(hparams["output_folder"], "results"),
            title=split,
        )
    if if_main_process():
        export_model(hparams)
        tag = (
            "SYNTHETIC corpus (generated by speechbrain_dpm.synth)"
            if is_synthetic(hparams["data_folder"])
            else "real corpus"
        )
        for split, table in results.items():
            print(
                f"\n{corpus} {split} results, {tag}:\n{results_table(table)}\n"
            )
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return results
