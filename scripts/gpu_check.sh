#!/usr/bin/env bash
# The checks that need a GPU, as one prepared pass (e.g. on a lent machine, whose time is short):
#
#   bash scripts/gpu_check.sh OUT_DIR [SECONDS]
#
# 1. tests/test_fused.py on the GPU: the fused kernel compiled by Triton (not Pallas' interpreter)
#    against the XLA path from the same carry.
# 2. configs/quickstart.yaml end to end on the GPU: engine auto (the fused kernel) cold, then warm,
#    then engine=xla; their runs.csv compared lane by lane (compare below); runs.csv of both and
#    one figure kept in OUT_DIR.
# 3. scripts/gpu_rounding.py: the kernel's elementwise arithmetic against XLA's, bit by bit.
# 4. scripts/bench_gpu.py at 2^20 and 2^16 lanes (bare, XLA path, fused), one JSON each.
# 5. the slow rows of tests/test_fused.py (every first-order optimizer x objective x options).
# 6. PyTorch's row of the benchmark at 2^20 lanes, if PyTorch is installed.
#
# Every step runs under its own time limit, cut to what is left of SECONDS (default 400) for the
# whole pass; a step that fails or runs out of time does not stop the next. Everything printed
# goes to OUT_DIR/gpu_check.log too. Where .whl/ holds wheels (packages the machine lacks, e.g.
# pydantic), they are installed to a private folder first.
set -u
out=${1:?usage: gpu_check.sh OUT_DIR [SECONDS]}
deadline=$((SECONDS + ${2:-400}))
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gdkit-site .whl/*.whl && export PYTHONPATH=/tmp/gdkit-site:$PWD
fi

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2 left=$((deadline - SECONDS)) t0=$SECONDS rc
    shift 2
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        echo "== $name: skipped, no time left"
        return
    fi
    echo "== $name (limit ${limit} s)"
    timeout "$limit" "$@"
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
}

compare=$(mktemp --suffix=.py)  # compare.py FUSED_RUN_DIR XLA_RUN_DIR: lane by lane
cat >"$compare" <<'EOF'
import sys

import numpy as np
import pandas as pd

a, b = (pd.read_csv(f"{d}/runs.csv").sort_values("run_id") for d in sys.argv[1:3])
assert list(a.run_id) == list(b.run_id), "different lanes"
print(f"{len(a)} lanes; statuses equal in {np.mean(a.status.values == b.status.values):.4%}")
print(f"steps_to_tol equal in {np.mean(a.steps_to_tol.values == b.steps_to_tol.values):.4%}")
for col in ("final_loss", "best_loss"):
    x, y = a[col].to_numpy(float), b[col].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-30)
    print(f"{col}: finite in both {ok.mean():.4%}, NaN pattern equal "
          f"{np.mean(np.isnan(x) == np.isnan(y)):.4%}, relative difference median "
          f"{np.median(rel):.2e}, 99th percentile {np.quantile(rel, 0.99):.2e}, max {rel.max():.2e}")
print(pd.crosstab(a.status, b.status, rownames=["fused"], colnames=["xla"]).to_string())
EOF

step "machine" 30 bash -c 'nvidia-smi -L; python3 -c "import jax, optax, sys
print(sys.version.split()[0], \"jax\", jax.__version__, \"optax\", optax.__version__, jax.devices())"'

step "fused kernel vs XLA path (tests/test_fused.py)" 100 \
    python3 -m pytest -q -p no:cacheprovider -n 4 --dist load tests/test_fused.py

step "quickstart: the planned back ends" 30 python3 -m gdkit run configs/quickstart.yaml --dry-run
runs=$(mktemp -d)
for how in cold warm xla; do
    set -- --out "$runs/$how" --no-progress
    [[ $how == xla ]] && set -- "$@" --set engine=xla
    step "quickstart ($how)" 60 python3 -m gdkit run configs/quickstart.yaml "$@"
done
fused_dir=$(ls -d "$runs"/warm/*/ 2>/dev/null | head -1)
xla_dir=$(ls -d "$runs"/xla/*/ 2>/dev/null | head -1)
if [[ -n $fused_dir && -n $xla_dir ]]; then
    step "quickstart: fused (auto) vs engine=xla" 30 python3 "$compare" "$fused_dir" "$xla_dir"
    cp "$fused_dir/runs.csv" "$out/runs-fused.csv"
    cp "$xla_dir/runs.csv" "$out/runs-xla.csv"
    cp "$fused_dir/plots/contour-rosenbrock.png" "$out/" 2>/dev/null
fi

step "elementwise rounding, kernel vs XLA" 60 python3 scripts/gpu_rounding.py

for lanes in 1048576 65536; do
    step "bench_gpu.py --lanes $lanes" 75 python3 scripts/bench_gpu.py --lanes "$lanes" \
        --methods bare gdkit_xla gdkit_fused --json "$out/bench-$lanes.json"
done

step "fused kernel, slow rows" 120 python3 -m pytest -q -p no:cacheprovider -n 8 --dist load \
    -m "slow and not very_slow" tests/test_fused.py

if python3 -c "import torch" 2>/dev/null; then
    step "bench_gpu.py PyTorch" 60 python3 scripts/bench_gpu.py --lanes 1048576 --methods torch \
        --json "$out/bench-torch.json"
fi
echo "== done, $((deadline - SECONDS)) s of the pass left"
