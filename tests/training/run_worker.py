"""Runs one training process for the distributed and resume tests.

Usage: python run_worker.py SPEC.json, where the spec holds
    overrides     TrainConfig fields
    weights_out   .npz file for the final weights
    initial_out   .npz file for the weights before training
    resume        continue from the run directory's checkpoint
    pause_at_step after this step, write `pause_marker` and sleep (to be killed)
TF_CONFIG (multi-worker) comes from the environment.
"""

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(spec_path):
    spec = json.loads(pathlib.Path(spec_path).read_text())
    import numpy as np

    from se_keras.training import Callback
    from se_keras.training import resolve_config
    from se_keras.training import train

    class Pause(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == spec.get("pause_at_step"):
                pathlib.Path(spec["pause_marker"]).write_text(str(step))
                time.sleep(600)

    class SaveWeights(Callback):
        def on_train_begin(self, trainer):
            if spec.get("initial_out"):
                np.savez(spec["initial_out"], *[np.asarray(w) for w in trainer.model.get_weights()])

        def on_train_end(self, trainer, results):
            if spec.get("weights_out"):
                weights = [np.asarray(w) for w in trainer.model.get_weights()]
                np.savez(spec["weights_out"], *weights)
                pathlib.Path(spec["weights_out"] + ".json").write_text(json.dumps(results))

    config = resolve_config("default", spec["overrides"])
    train(config, resume=spec.get("resume", False), callbacks=[Pause(), SaveWeights()])


if __name__ == "__main__":
    main(sys.argv[1])
