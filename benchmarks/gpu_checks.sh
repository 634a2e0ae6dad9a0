#!/usr/bin/env bash
# The GPU checks quoted in docs/performance.md ("On a GPU"), on a machine with one CUDA GPU,
# the repository's root as the working folder and no network:
#     bash benchmarks/gpu_checks.sh OUT_FOLDER [STEP ...]
# STEPs (default: all, in this order): scoring-tiny random-model scoring-1b memflex-1b
# privacy-1b main-job general-1b main-job-general. Each has its own time limit, so one slow
# step leaves the others' output. The general-task steps need lm-eval: where the machine
# lacks it, its wheels and those of the versions it was tested with (datasets,
# huggingface_hub, transformers, tokenizers, ...) are carried in .whl-lmeval and installed
# for those steps alone (benchmarks/gpu_wheels.sh fetches .whl and .whl-lmeval).
set -u
out=${1:-gpu-checks}
shift || true
steps=${*:-scoring-tiny random-model scoring-1b memflex-1b privacy-1b main-job general-1b main-job-general}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
run() { local limit=$1; shift; echo "=== $*"; timeout "$limit" "$@" 2>&1 | grep -v "it/s\]" ; }
wanted() { [[ " $steps " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import sys, torch, transformers, peft, accelerate, pytest; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'pytest', pytest.__version__)"
# rouge-score and nltk, carried as wheels in .whl when the machine lacks them.
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -1
lmeval_path=${PYTHONPATH:-}
if [ -d .whl-lmeval ] && [[ "$steps" == *general* ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site-lmeval \
        .whl-lmeval/*.whl
    lmeval_path=/tmp/site-lmeval${PYTHONPATH:+:$PYTHONPATH}
fi

wanted scoring-tiny && run 110 python3 benchmarks/scoring_speed.py --model tiny --data builtin \
    --device cuda --dtype bfloat16 --cache-dir /tmp/cache
wanted random-model && run 60 python3 benchmarks/random_model.py /tmp/random-1b --hidden 2048 \
    --layers 16
wanted scoring-1b && run 90 python3 benchmarks/scoring_speed.py --model /tmp/random-1b \
    --data builtin --device cuda --dtype bfloat16 --generate-items 16 --cache-dir /tmp/cache
wanted memflex-1b && run 120 python3 benchmarks/memflex_step.py --model /tmp/random-1b \
    --data builtin --device cuda --dtype bfloat16 --records 32 --epochs 2 --repeats 1 \
    --cache-dir /tmp/cache
# The pretrained-model path with the defaults (device and dtype auto), progress lines shown.
wanted privacy-1b && run 150 python3 -m pytest suites/privacy/test_privacy.py -p no:cacheprovider \
    --tb=no -rN --model=/tmp/random-1b --unlearn-method=none,gradient_ascent \
    --unlearn-data=builtin --unlearn-cache-dir=/tmp/cache \
    --unlearn-json="$out/random-1b-privacy.json"
# README's main job (tiny model, builtin data), with the defaults (the tiny model stays float32).
wanted main-job && run 150 python3 -m pytest suites/privacy -p no:cacheprovider --tb=no -rN \
    --unlearn-method=none,gradient_ascent,memflex --unlearn-cache-dir=/tmp/cache-main \
    --unlearn-json="$out/main-job.json"
# lm-eval on the GPU: the 0.84B random model tested as it is on the builtin general tasks
# (bfloat16), then README's main job with the general suite (tiny model, float32).
wanted general-1b && run 60 env PYTHONPATH="$lmeval_path" python3 -c "import lm_eval, transformers, datasets; print('lm_eval', lm_eval.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__)"
wanted general-1b && run 120 env PYTHONPATH="$lmeval_path" python3 -m pytest suites/general -p no:cacheprovider \
    --tb=short -rN --model=/tmp/random-1b --unlearn-inject=never --unlearn-method=none \
    --unlearn-general-tasks=builtin --unlearn-cache-dir=/tmp/cache \
    --unlearn-json="$out/random-1b-general.json"
wanted main-job-general && run 150 env PYTHONPATH="$lmeval_path" python3 -m pytest suites/privacy suites/general \
    -p no:cacheprovider --tb=short -rN --unlearn-method=none,gradient_ascent,memflex \
    --unlearn-cache-dir=/tmp/cache-main --unlearn-json="$out/main-job-general.json"
