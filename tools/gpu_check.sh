#!/usr/bin/env bash
# GPU check (one CUDA GPU, about 8 minutes): what the CPU tests cannot show.
#
# 1. The IEMOCAP paper recipe (hparams/dpm_paper.yaml) on CUDA in bfloat16,
#    with a tiny random Llama saved in bfloat16 and a tiny random Whisper,
#    one epoch on a generated corpus (needs espeak-ng; skipped without it).
# 2. The SmolLM2-135M training step (the demo's batch 4 x 512) in bfloat16
#    with autocast, with and without gradient checkpointing, then with
#    checkpointing at batch 8, 16, 32, ... until it no longer fits:
#    tokens/s, the ratio to batch 4, and peak GPU memory per batch.
# 3. SmolLM2 DPM at batch 1 (one forward, one temporary-LoRA write, one
#    DPM utterance): the cost ratio of a DPM utterance to a forward and peak
#    GPU memory; then benchmarks/batched.py: DPM utterances per second for
#    32 conversations side by side vs 1, fp32 and bf16.
#
# SmolLM2's packaged weights are used when present; otherwise random
# weights of the same shape (timing and memory depend on the shape only).
# Results: printed, and the JSON lines under ${OUT:-results/gpu_check}.
#
# Usage: bash tools/gpu_check.sh        (PYTHON: the interpreter, with torch
#        built for CUDA, transformers, peft and speechbrain installed)
#        DEVICE=cpu MODEL=tiny bash tools/gpu_check.sh   (a smoke run of the
#        script itself on CPU, tiny model)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
OUT=${OUT:-results/gpu_check}
DEVICE=${DEVICE:-cuda:0}
MODEL=${MODEL:-smollm2-135m}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
START=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*"; }

"$PY" - "$DEVICE" <<'EOF' || { echo "no CUDA device: nothing to check"; exit 1; }
import sys, torch
if sys.argv[1] != "cpu":
    assert torch.cuda.is_available()
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.1f} GiB; torch {torch.__version__}")
EOF

# 1. the paper recipe, tiny models, CUDA, bfloat16 -------------------------
stamp "1. tiny paper recipe on CUDA (bf16)"
WORK=$(mktemp -d)
if command -v espeak-ng >/dev/null; then
    "$PY" - "$WORK" <<'EOF'
import sys, torch
from speechbrain_dpm.sllm import tiny_llm
from speechbrain_dpm.units import save_tiny_whisper
from speechbrain_dpm.synth import IemocapConfig, generate_iemocap
root = sys.argv[1]
save_tiny_whisper(f"{root}/whisper")
tiny_llm().to(torch.bfloat16).save_pretrained(f"{root}/llm")
generate_iemocap(
    f"{root}/corpus", IemocapConfig(n_dialogues=10, turns=(3, 4)), n_jobs=2
)
EOF
    t0=$(date +%s)
    timeout 240 "$PY" recipes/IEMOCAP/train.py recipes/IEMOCAP/hparams/dpm_paper.yaml \
        --data_folder="$WORK/corpus" --output_folder="$WORK/out" \
        --encoder_source="$WORK/whisper" --llm_source="$WORK/llm" \
        --number_of_epochs=1 --n_units=8 --n_ctx=64 --n_r=32 --n_limit=96 \
        --n_window=256 --batch_size=2 --feat_dim=64 --lora_rank=4 \
        --lora_alpha=8 --memory_rank=2 --memory_alpha=4 \
        --device="$DEVICE" --precision=bf16 --noprogressbar \
        > "$OUT/recipe.log" 2>&1
    rc=$?
    stamp "recipe rc=$rc in $(( $(date +%s) - t0 )) s (log: $OUT/recipe.log)"
    grep -A6 "test results" "$OUT/recipe.log" || tail -20 "$OUT/recipe.log"
else
    stamp "espeak-ng missing: recipe run skipped"
fi

# 2. SmolLM2 training step, bf16 + autocast ----------------------------------
stamp "2. SmolLM2 training step on CUDA (bf16, autocast)"
train() {  # $1 batch, $2 checkpointing
    timeout 120 "$PY" benchmarks/footprint.py --child train \
        --model "$MODEL" --device "$DEVICE" --dtype bfloat16 --autocast 1 \
        --steps 4 --batch "$1" --n-ctx 512 --checkpointing "$2" 2>/dev/null \
        | grep '^RESULT ' | sed 's/^RESULT //'
}
: > "$OUT/train.jsonl"
for ck in 0 1; do
    r=$(train 4 "$ck"); echo "{\"batch\": 4, \"checkpointing\": $ck, \"result\": ${r:-null}}" >> "$OUT/train.jsonl"
done
for b in 8 16 32 64 128; do
    [ $(( $(date +%s) - START )) -gt 330 ] && { stamp "time budget: batch sweep stopped"; break; }
    r=$(train "$b" 1)
    [ -z "$r" ] && { stamp "batch $b does not fit (or failed)"; break; }
    echo "{\"batch\": $b, \"checkpointing\": 1, \"result\": $r}" >> "$OUT/train.jsonl"
done
"$PY" - "$OUT/train.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next((r["result"] for r in rows if r["batch"] == 4 and r["checkpointing"] and r["result"]), None)
for r in rows:
    res = r["result"]
    if not res:
        print(f"batch {r['batch']} ckpt {r['checkpointing']}: failed"); continue
    ratio = res["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
    print(f"batch {r['batch']:>3} checkpointing {r['checkpointing']}: "
          f"{res['tokens_per_s']:.0f} tokens/s ({ratio:.2f}x batch 4 checkpointed), "
          f"peak GPU {res['peak_gpu_mib'] or 0:.0f} MiB, loss {res['losses'][-1]:.4f}")
EOF

# 3. SmolLM2 DPM -------------------------------------------------------------
stamp "3. SmolLM2 DPM on CUDA (bf16)"
dpm() {  # n_r
    timeout 120 "$PY" benchmarks/footprint.py --child dpm --model "$MODEL" \
        --device "$DEVICE" --dtype bfloat16 --n-r "$1" --utt 80 --memory-rank 8 \
        2>/dev/null | grep '^RESULT ' | sed 's/^RESULT //'
}
: > "$OUT/dpm.jsonl"
for n_r in 256 1024; do
    r=$(dpm "$n_r"); echo "{\"n_r\": $n_r, \"batch\": 1, \"result\": ${r:-null}}" >> "$OUT/dpm.jsonl"
done
# Many conversations at once (one memory slot each): utterances per second
# at batch 1, 8 and 32 in fp32 and bf16, relative to batch 1 fp32.
if timeout 200 "$PY" benchmarks/batched.py --model "$MODEL" --device "$DEVICE" \
    --batches 1 8 32 --repeats 3 --target-batch 32 --threads 4 \
    --out "$OUT/batched.json" > "$OUT/batched.log" 2>&1; then
    stamp "batched.py (DPM, batch 1 / 8 / 32):"; grep -E "_b[0-9]+ |sequential|peak GPU" "$OUT/batched.log"
else
    stamp "batched.py failed or timed out (see $OUT/batched.log)"
fi
"$PY" - "$OUT/dpm.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    res = r["result"]
    if not res:
        print(f"n_r {r['n_r']}: failed"); continue
    print(f"n_r {r['n_r']:>4} batch 1: forward {res['forward_s'] * 1e3:.1f} ms, "
          f"DPM utterance / forward {res['dpm_after_write_over_forward']:.2f}, "
          f"DPM / (forward + write) {res['ratio_after_write']:.2f}, "
          f"peak GPU {res['peak_gpu_mib'] or 0:.0f} MiB")
EOF
rm -rf "$WORK"
stamp "done"
