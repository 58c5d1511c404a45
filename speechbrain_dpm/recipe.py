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

from speechbrain_dpm.brain import DPMBrain
from speechbrain_dpm.dpm_training import DPMAwareBrain
from speechbrain_dpm.export import export_model_folder
from speechbrain_dpm.llm import check_window, disable_checkpointing
from speechbrain_dpm.metrics import results_table, write_results
from speechbrain_dpm.training_data import load_dialogues
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
    if has_classifier_stage(hparams) and hparams["init_from"]:
        raise ValueError(
            "init_from: a two-stage YAML's stage 2 starts from its stage 1; "
            "set init_from: null"
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


def is_dpm_aware(hparams):
    """True for a DPM-aware YAML, one that declares the options of
    DPM-aware training (``dpm_aware_training``, see
    ``recipes/IEMOCAP/hparams/dpm_aware.yaml``): ``DPMAwareBrain`` trains
    it, ``DPMBrain`` the others."""
    return "dpm_aware_training" in hparams


#: The row of the first stage of a two-stage YAML (utterance alone).
CLASSIFIER_ROW = "classifier"


def has_classifier_stage(hparams):
    """True for a two-stage YAML, one that declares the first stage's
    checkpointer (``classifier_checkpointer``, see
    ``recipes/IEMOCAP/hparams/dpm_feedback.yaml``)."""
    return "classifier_checkpointer" in hparams


def best_on_valid(valid_results):
    """The row with the highest validation UA (ties: the first listed).

    Example
    -------
    >>> best_on_valid({"a": {"UA": 50.0}, "b": {"UA": 61.0}, "c": {"UA": 61.0}})
    'b'
    """
    return max(valid_results, key=lambda name: valid_results[name]["UA"])


def train_classifier_stage(hparams, run_opts, data):
    """Stage 1 of a two-stage YAML: the same SLLM trained as the utterance
    classifier (``classifier_hparams``: single-utterance windows, emotion
    loss only, no emotion feedback), with its own epoch counter,
    checkpoints and log, so a stopped run resumes in its stage. The best
    stage-1 checkpoint (validation UA) is left loaded in the SLLM, where
    stage 2 starts from unless it has checkpoints of its own.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    run_opts : dict
        SpeechBrain's run options.
    data : dict
        Split → dialogues (``load_dialogues``).

    Returns
    -------
    dict
        Split → ``{"classifier": metrics}`` for ``eval_splits`` (and
        ``valid`` with ``export_strategy: best_on_valid``).
    """
    sllm = hparams["sllm"]
    stage = {
        **hparams,
        **hparams["classifier_hparams"],
        "epoch_counter": hparams["classifier_counter"],
        "checkpointer": hparams["classifier_checkpointer"],
        "train_logger": hparams["classifier_logger"],
    }
    feedback = sllm.emotion_feedback
    sllm.emotion_feedback = False  # the classifier reads utterances alone
    try:
        brain = DPMBrain(
            modules=hparams["modules"],
            opt_class=hparams["opt_class"],
            hparams=stage,
            run_opts=run_opts,
            checkpointer=stage["checkpointer"],
        )
        logger.info("Stage 1 of 2: the utterance classifier")
        brain.fit(
            stage["epoch_counter"],
            brain.make_window_loader(
                data["train"],
                sb.Stage.TRAIN,
                **hparams["classifier_loader_kwargs"],
            ),
            brain.make_window_loader(
                data["valid"],
                sb.Stage.VALID,
                ckpt_prefix=None,
                **hparams["valid_loader_kwargs"],
            ),
        )
        results = {}
        for split in evaluated_splits(hparams):
            results[split] = brain.evaluate_strategies(
                data[split],
                {CLASSIFIER_ROW: {"strategy": "utterance"}},
                out_dir=os.path.join(hparams["output_folder"], "results"),
                title=split,
                batch_size=hparams["eval_batch_size"],
            )
    finally:
        sllm.emotion_feedback = feedback
    logger.info("Stage 2 of 2: the SLLM, from the classifier's tensors")
    return results


def evaluated_splits(hparams):
    """``eval_splits``, after ``valid`` when the exported row is chosen
    on validation (``export_strategy: best_on_valid``)."""
    splits = list(hparams["eval_splits"])
    if hparams["export_strategy"] == "best_on_valid" and "valid" not in splits:
        splits.insert(0, "valid")
    return splits


def choose_export(hparams, results):
    """The row to export and why: ``export_strategy``, or with
    ``best_on_valid`` the row of highest validation UA.

    Returns
    -------
    tuple
        ``(row name, reason)``.
    """
    name = hparams["export_strategy"]
    if name != "best_on_valid":
        return name, f"export_strategy: {name} (fixed in the hparams)"
    valid = results["valid"]
    best = best_on_valid(valid)
    scores = ", ".join(f"{k} {m['UA']:.2f}" for k, m in valid.items())
    return best, (
        f"export_strategy: best_on_valid chose {best}, the highest "
        f"validation UA of the rows ({scores})"
    )


def export_model(hparams, name=None, reason=None):
    """Writes the ready-to-use model folder (``hparams["export_folder"]``)
    that ``DPMEmotionRecognizer.from_hparams`` loads.

    Arguments
    ---------
    hparams : dict
        The loaded recipe hyperparameters, after training.
    name : str, optional
        The row to export (default: ``export_strategy``). The classifier
        row of a two-stage YAML exports stage 1's best tensors.
    reason : str, optional
        Why this row: logged and written to ``EXPORT_REASON.txt`` in the
        folder.

    Returns
    -------
    str
        The folder.
    """
    name = name or hparams["export_strategy"]
    rows = active_strategies(hparams)
    if name == CLASSIFIER_ROW and has_classifier_stage(hparams):
        hparams["classifier_checkpointer"].recover_if_possible(max_key="UA")
        rows = {CLASSIFIER_ROW: {"strategy": "utterance"}}
    if name not in rows:
        logger.warning(
            "export_strategy %r is not an evaluated row of test_strategies: "
            "exported with the strategy's default options",
            name,
        )
    opts = dict(rows.get(name) or {})
    opts.pop("diagnostics", None)
    # The model's settings travel with it (sllm.settings); the export adds
    # the strategy it runs.
    settings = {"strategy": opts.pop("strategy", name), "strategy_opts": opts}
    folder = export_model_folder(
        hparams["export_folder"],
        hparams["sllm"],
        hparams["codebook_path"],
        hparams["emotions"],
        settings,
    )
    if reason:
        with open(
            os.path.join(folder, "EXPORT_REASON.txt"), "w", encoding="utf-8"
        ) as fout:
            fout.write(reason + "\n")
        logger.info(reason)
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
    if is_dpm_aware(hparams) and disable_checkpointing(sllm.llm):
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
    stage1 = {}
    if has_classifier_stage(hparams):
        stage1 = train_classifier_stage(hparams, run_opts, data)
    brain_class = DPMAwareBrain if is_dpm_aware(hparams) else DPMBrain
    brain = brain_class(
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
    init = hparams["init_from"]
    if init and hparams["checkpointer"].find_checkpoint() is None:
        # A fresh run that starts from another run's trained tensors (e.g.
        # DPM-aware fine-tuning of a plain model); a resumed run does not.
        sllm.load(init)
        logger.info("Initialised the SLLM from %s", init)
    brain.fit(hparams["epoch_counter"], train_loader, valid_loader)
    # eval_splits: [valid] (with --test_only) tunes e.g. memory_lr on the
    # validation split without touching the test split.
    results = {}
    out_dir = os.path.join(hparams["output_folder"], "results")
    for split in evaluated_splits(hparams):
        results[split] = brain.evaluate_strategies(
            data[split],
            active_strategies(hparams),
            out_dir,
            title=split,
            batch_size=hparams["eval_batch_size"],
        )
        if stage1 and if_main_process():
            # the classifier row first, then the SLLM's rows
            results[split] = {**stage1[split], **results[split]}
            write_results(
                results[split], out_dir, list(hparams["emotions"]), split
            )
    if if_main_process():
        export_model(hparams, *choose_export(hparams, results))
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
