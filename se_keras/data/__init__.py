"""Input pipelines: decoding, preprocessing and dataset sources (tf.data throughout)."""

from se_keras.data.preprocessing import decode_image
from se_keras.data.preprocessing import eval_preprocess
from se_keras.data.preprocessing import eval_preprocess_bytes
from se_keras.data.preprocessing import normalize

__all__ = ["decode_image", "eval_preprocess", "eval_preprocess_bytes", "normalize"]
