#!/usr/bin/env bash
# SE's cost against the plain twins, as one command: on a CPU the runs the
# README reports (about 25 minutes on 2 cores); on a GPU a set that fits a
# 10-minute slot (float16 and XLA, as models run there).
# Usage: training/benchmark_se.sh [OUT_DIR]
set -euo pipefail
out="${1:-benchmark-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
if python -c "import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices('GPU'))" 2>/dev/null; then
  se-keras benchmark --batch 1,16,64 --train-batch 32 --mixed-precision mixed_float16 \
    --json "$out/gpu_float16.json" | tee "$out/gpu_float16.md"
  se-keras benchmark --models SEResNet50:224,SEResNeXt50:224 --batch 16,64 --train-batch 32 \
    --mixed-precision mixed_float16 --xla --json "$out/gpu_float16_xla.json" | tee "$out/gpu_float16_xla.md"
else
  se-keras benchmark --models SEResNet50:224,SEMobileNet:224,SEResNet20:32 \
    --profile "$out/traces" --json "$out/cpu.json" | tee "$out/cpu.md"
  # Grouped-convolution gradients are too slow on TensorFlow's CPU kernels
  # for a training step comparison.
  se-keras benchmark --models SEResNeXt50:224 --train-batch 0 \
    --profile "$out/traces" --json "$out/cpu_resnext.json" | tee "$out/cpu_resnext.md"
  se-keras benchmark --models SEResNet50:224 --batch 16 --xla \
    --json "$out/cpu_xla.json" | tee "$out/cpu_xla.md"
fi
echo "results in $out (open the traces with: tensorboard --logdir $out/traces)"
