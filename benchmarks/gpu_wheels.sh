#!/usr/bin/env bash
# Fetch, on a machine with network, the wheels that benchmarks/gpu_checks.sh installs on a
# GPU machine without network (Python 3.12, x86_64): .whl (rouge-score, nltk and gguf, for
# every step) and .whl-lmeval (lm-eval and the versions of its stack this project is tested with,
# for the general-task steps alone). Run from the repository's root:
#     bash benchmarks/gpu_wheels.sh
# The lists name the packages that the GPU image of docs/performance.md lacks or has in
# other versions; another image may need more (the step's import line says which).
set -eu
fetch() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$@"
}
fetch .whl nltk==3.10.4 gguf==0.19.0  # gguf: loading the .gguf models of benchmarks/gpu_issue22.py
fetch .whl-lmeval lm_eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 \
    multiprocess==0.70.19 more-itertools==11.2.1 pytablewriter==1.2.1 DataProperty==1.1.1 \
    mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.5 \
    chardet==6.0.0.post1 fsspec==2026.9.0 huggingface_hub==2.4.0 httpx2==2.16.2 \
    httpcore2==2.16.2 truststore==0.10.5 idna==3.20 click==8.5.1 hf-xet==1.8.0 h11==0.16.0 \
    transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 regex==2026.11.19 defusedxml==0.7.1
# Published as source only: built here (pure Python, so the wheel fits any machine).
python3 -m pip wheel -q --no-deps -w .whl rouge_score==0.1.2
python3 -m pip wheel -q --no-deps -w .whl-lmeval sqlitedict==2.1.0 word2number==1.1
