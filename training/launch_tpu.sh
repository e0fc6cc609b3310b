#!/usr/bin/env bash
# Training on a Cloud TPU with TPUStrategy (mixed_bfloat16 by default).
#
# TPUs read their data from Cloud Storage: convert an image folder with
#   se-keras data to-tfrecords /path/to/images gs://bucket/my-data --val-split 0.1
# On a TPU VM use TPU=local; from a separate host, TPU=<tpu name or grpc address>.
#
#   TPU=local training/launch_tpu.sh --recipe paper --data tfrecord:gs://bucket/imagenet \
#       --run-dir gs://bucket/runs/se-resnet50-paper
set -euo pipefail
exec ${SE_KERAS:-se-keras} train --strategy tpu --tpu "${TPU:-local}" --steps-per-loop 100 "$@"
