"""Choosing the tf.distribute strategy and the mixed-precision policy.

The trainer runs one code path under every strategy; this module picks the
strategy (`--strategy auto` looks at TF_CONFIG, TPUs and GPUs) and the
dtype policy that fits the hardware.

Example:
>>> strategy = make_strategy("default")
>>> strategy.num_replicas_in_sync
1
"""

import json
import os

import tensorflow as tf


def _tf_config():
    try:
        return json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}).") from error


def _num_workers(tf_config):
    cluster = tf_config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _tpu_present(tpu):
    return bool(tpu or os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0")
                or os.path.exists("/dev/vfio/0"))


def split_cpu(num_devices):
    """Splits the host CPU into `num_devices` logical devices (before TensorFlow starts).

    Lets `MirroredStrategy` run replicas on a machine without GPUs (the
    tests and laptops).
    """
    if num_devices and num_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * int(num_devices)
            )
        except RuntimeError as error:
            raise ValueError(
                "The CPU can only be split before TensorFlow initializes its devices; set "
                f"cpu_devices at the start of the process ({error}). "
                f"Received: cpu_devices={num_devices}"
            ) from error


def make_strategy(name="auto", tpu=None, cpu_devices=0):
    """Creates the distribution strategy.

    Must run before any other TensorFlow operation of the process:
    `MultiWorkerMirroredStrategy` and TPU initialization require it.

    Args:
        name: "auto" (TPU if one is named or attached, else multi-worker
            when TF_CONFIG lists several workers, else mirrored over
            several GPUs or logical CPUs, else default), "default",
            "mirrored", "multi_worker" or "tpu".
        tpu: TPU name or gRPC address for `TPUClusterResolver` ("local"
            on a TPU VM).
        cpu_devices: split the CPU into this many logical devices first.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> make_strategy("default").num_replicas_in_sync
    1
    """
    split_cpu(cpu_devices)
    tf_config = _tf_config()
    if name == "auto":
        if _tpu_present(tpu):
            name = "tpu"
        elif _num_workers(tf_config) > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1 or (cpu_devices or 0) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        # NCCL needs GPUs; on CPUs gather the gradients on one device instead.
        cross_device = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device)
    if name == "multi_worker":
        if _num_workers(tf_config) < 1:
            raise ValueError(
                "The multi_worker strategy needs TF_CONFIG with the cluster's workers "
                "(see training/launch_multiworker.sh). Received: strategy='multi_worker'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        tpu_address = None if tpu in (None, "local") else tpu
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="local" if tpu == "local" else tpu_address
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        "`strategy` must be one of 'auto', 'default', 'mirrored', 'multi_worker', 'tpu'. "
        f"Received: strategy={name!r}"
    )


def strategy_kind(strategy):
    """"tpu", "multi_worker", "mirrored" or "default"."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"


def worker_info(strategy):
    """(task_type, task_id, is_chief) of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if strategy_kind(strategy) != "multi_worker" or task_type is None:
        return task_type, task_id, True
    cluster = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                     and "chief" not in cluster)
    return task_type, task_id, chief


def choose_precision(precision, strategy):
    """The Keras dtype policy name for `precision` on this hardware.

    "auto": mixed_float16 on GPUs (dynamic loss scaling), mixed_bfloat16 on
    TPUs, float32 on CPUs (most CPUs have no fast 16-bit matmuls).
    "mixed": the same, but mixed_bfloat16 on CPUs.

    Example:
    >>> choose_precision("auto", make_strategy("default")) in ("float32", "mixed_float16")
    True
    """
    if precision in ("float32", "mixed_float16", "mixed_bfloat16"):
        return precision
    kind = strategy_kind(strategy)
    if kind == "tpu":
        return "mixed_bfloat16"
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if precision == "mixed" else "float32"
