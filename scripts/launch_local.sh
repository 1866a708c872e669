#!/usr/bin/env bash
# Runs one gdkit sweep as N processes on this machine, the way it would run on N hosts: JAX's
# multi-process runtime (CPU collectives over gloo), DEVICES devices per process (default 2),
# lanes sharded over all N x DEVICES devices. Process 0 prints and writes the run directory.
#
#   scripts/launch_local.sh 2 configs/quickstart.yaml [more `gdkit run` options]
set -euo pipefail
n=${1:?usage: launch_local.sh N CONFIG [gdkit run options]}
config=${2:?usage: launch_local.sh N CONFIG [gdkit run options]}
shift 2
python=${PYTHON:-python3}
port=${PORT:-$((20000 + RANDOM % 20000))}
devices=${DEVICES:-2}
export XLA_FLAGS="--xla_force_host_platform_device_count=$devices"
export JAX_PLATFORMS=cpu

run() {  # run PROCESS_ID [options]
  local id=$1
  shift
  "$python" -m gdkit run "$config" --distributed \
    --set "distributed.coordinator_address=localhost:$port" \
    --set "distributed.num_processes=$n" --set "distributed.process_id=$id" "$@"
}

pids=()
for ((i = 1; i < n; i++)); do
  run "$i" --no-progress "$@" >/dev/null &
  pids+=("$!")
done
status=0
run 0 "$@" || status=$?
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
