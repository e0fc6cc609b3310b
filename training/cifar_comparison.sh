#!/usr/bin/env bash
# SE-ResNet-20 vs ResNet-20 on the CIFAR-10 JPEG folder, each for the same
# wall-clock budget (the learning-rate schedule is fitted to the steps that
# the budget allows), validated on the last 500 images of each class.
#
#   training/cifar_comparison.sh [CIFAR_TRAIN_FOLDER] [MINUTES]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${1:-$here/../../shared/datasets/cifar10/train}
minutes=${2:-30}
for variant in "se-resnet20:se=true" "resnet20:se=false"; do
    name=${variant%%:*}
    kwargs=${variant#*:}
    ${SE_KERAS:-se-keras} train --recipe cifar --data "folder:$data" --val-split 500 \
        --model SEResNet20 --model-kwargs "$kwargs" --time-budget-min "$minutes" --seed 0 \
        --verbose 2 --name "cifar-$name-${minutes}min"
done
for name in se-resnet20 resnet20; do
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(sys.argv[2], "top-1 %.4f top-5 %.4f, %d steps, %.0f img/s" % (r["val_accuracy"], r["val_top5"], r["steps"], r["images_per_sec"] or 0))' \
        "runs/cifar-$name-${minutes}min/config.json" "$name"
done
