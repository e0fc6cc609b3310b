"""Input pipelines: decoding, preprocessing and dataset sources (tf.data throughout).

- `sources`: where images come from (`get_source("digits" | "folder:PATH" |
  "tfrecord:PATH" | "tfds:NAME")`), dispatching to one module per source:
  `digits`, `folder`, `tfrecord_source`, `tfds_source`; `splits` holds the
  `Source` / `Split` interface and the seeded order helpers, `arrays` the
  splits held as file lists or bytes.
- `preprocessing`: `decode_image`, the shared `eval_preprocess` and
  `preprocess_image` (one image through a model's record).
- `errors`: label checks and the errors that name broken files.
- `augment`: the training transform (random crop fused with decoding, flip)
  and batch augmentation (core Keras RandAugment, MixUp, CutMix).
- `pipeline`: `train_dataset` / `eval_dataset`, per-worker sharded,
  parallel, prefetched, resumable.
- `tfrecords`: the TFRecord format (ImageNet / TPU layout), written and parsed
  with one schema.

Example:
>>> from se_keras.data import get_source, train_dataset, Preprocessing
>>> source = get_source("digits")
>>> ds = train_dataset(source.train, num_classes=source.num_classes,
...                    global_batch_size=32, preprocessing=Preprocessing(size=16))
"""

from se_keras.data.augment import BatchAugmentation
from se_keras.data.augment import decode_and_random_crop
from se_keras.data.augment import train_preprocess
from se_keras.data.pipeline import Augmentation
from se_keras.data.pipeline import eval_dataset
from se_keras.data.pipeline import parse_eval
from se_keras.data.pipeline import parse_train
from se_keras.data.pipeline import train_dataset
from se_keras.data.preprocessing import decode_image
from se_keras.data.preprocessing import eval_preprocess
from se_keras.data.preprocessing import eval_preprocess_bytes
from se_keras.data.preprocessing import normalize
from se_keras.data.preprocessing import preprocess_image
from se_keras.data.sources import get_source
from se_keras.data.sources import list_image_folder
from se_keras.data.sources import Source
from se_keras.preprocessing import Preprocessing

__all__ = [
    "Augmentation",
    "BatchAugmentation",
    "decode_and_random_crop",
    "decode_image",
    "eval_dataset",
    "eval_preprocess",
    "eval_preprocess_bytes",
    "get_source",
    "list_image_folder",
    "normalize",
    "parse_eval",
    "parse_train",
    "Preprocessing",
    "preprocess_image",
    "Source",
    "train_dataset",
    "train_preprocess",
]
