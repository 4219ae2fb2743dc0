#!/usr/bin/env bash
# Wheels that the lent GPU machines' image lacks (it has torch, torchvision, timm, pandas,
# scikit-learn, tqdm, pytest ...; not spikingjelly, optuna, plotly ...), for its Python 3.12,
# downloaded here into .whl/ (git-ignored through .git/info/exclude), to carry to the device:
#
#   bash benchmarks/gpu_wheels.sh          # here, once: about 40 MB
#   device run, carry [".whl"], timeout_s 560:
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 \
#       && python3 benchmarks/bench_gpu.py --out $OUT
#
# The versions are those the test suite passes with here; the test extras (notebook kernel,
# database drivers) come along so that bench_gpu's last section can run the suite there. The
# one test of the installed `autospk-study` script needs, there, `python3 -m pip install -q
# --no-deps --no-build-isolation --no-index -e .` as well (into the image's own environment).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl \
    spikingjelly==2.0.0 loguru==0.7.3 scienceplots==2.2.2 \
    optuna==5.1.0 alembic==1.20.1 colorlog==6.12.0 sqlalchemy==2.1.9 mako==1.4.3 \
    optuna-dashboard==0.21.0 bottle==0.13.5 \
    moocore==0.3.2 cffi==2.1.1 pycparser==3.12 platformdirs==4.14.9 \
    plotly==7.1.0 tzdata==2026.6 \
    nbclient==0.11.0 nbformat==5.11.1 fastjsonschema==2.22.3 jsonschema==4.26.0 \
    jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 \
    ipykernel==7.4.0 ipython==9.19.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 parso==0.8.7 comm==0.2.3 \
    debugpy==1.8.22 executing==2.3.0 asttokens==3.0.2 pure-eval==0.2.4 stack-data==0.6.3 \
    matplotlib-inline==0.2.2 traitlets==5.16.1 jupyter-client==8.10.0 jupyter-core==5.9.1 pyzmq==27.3.0 \
    tornado==6.6.1 nest-asyncio2==1.7.4 prompt-toolkit==3.0.53 wcwidth==0.9.4 pexpect==4.9.0 ptyprocess==0.7.0 \
    psycopg==3.3.9 psycopg-binary==3.3.9 pymysql==1.2.4
du -sh .whl
