#!/usr/bin/env bash
# Multi-worker training with tf.distribute.MultiWorkerMirroredStrategy.
#
# On one machine (to try it out): starts NUM_WORKERS local worker processes
# on free ports of 127.0.0.1, each with its TF_CONFIG, and waits for them:
#
#   training/launch_multiworker.sh 2 --run-dir runs/mw-digits
#
# On a cluster: run this on every host with the same HOSTS list and the
# host's own TASK_INDEX (0 is the chief, which writes the run directory;
# the run directory must be on storage that every worker can read, e.g. GCS,
# for --resume):
#
#   HOSTS=10.0.0.1:12345,10.0.0.2:12345 TASK_INDEX=0 \
#     training/launch_multiworker.sh --recipe paper --data tfrecord:gs://bucket/imagenet \
#     --run-dir gs://bucket/runs/se-resnet50
#
# Any further arguments go to `se-keras train`; --batch-size is the global
# batch (split over the workers).
set -euo pipefail

SE_KERAS=${SE_KERAS:-se-keras}

if [[ -n "${HOSTS:-}" ]]; then
    : "${TASK_INDEX:?set TASK_INDEX to the index of this host in HOSTS}"
    workers=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1].split(",")))' "$HOSTS")
    export TF_CONFIG="{\"cluster\": {\"worker\": $workers}, \"task\": {\"type\": \"worker\", \"index\": $TASK_INDEX}}"
    exec $SE_KERAS train --strategy multi_worker "$@"
fi

num_workers=${1:?usage: launch_multiworker.sh NUM_WORKERS [se-keras train options]}
shift
log_dir=${LOG_DIR:-multiworker-logs}
mkdir -p "$log_dir"
ports=$(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in socks))
' "$num_workers")
workers=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1].split(",")))' "$ports")

pids=()
for ((i = 0; i < num_workers; i++)); do
    TF_CONFIG="{\"cluster\": {\"worker\": $workers}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
        $SE_KERAS train --strategy multi_worker "$@" > "$log_dir/worker-$i.log" 2>&1 &
    pids+=($!)
    echo "worker $i: pid ${pids[-1]}, log $log_dir/worker-$i.log"
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
tail -n 5 "$log_dir/worker-0.log"
exit $status
