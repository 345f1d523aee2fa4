"""Prepares MNIST- and IMDB-shaped TFDS datasets of random content in the array_record format,
for `python -m comparenets.analysis.bench --cases=reads --data_dir=DIR` where the real data cannot
be downloaded. Needs TensorFlow (TFDS encodes the images with it), so run it in a separate
environment:

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu 'tensorflow-datasets==4.9.10' importlib_resources
    /tmp/tfvenv/bin/python scripts/bench/prepare_tfds_reads.py /tmp/tfdsbench/data   # about 40 s

The datasets carry the real builders' names, versions and features (mnist 3.0.1: 60,000 + 10,000
random 28x28 images; imdb_reviews/plain_text 1.0.0: 25,000 + 25,000 reviews of 50 to 400 random
words), so `tfds.data_source(..., data_dir=DIR)` reads them as it reads the real data, with the
same features and decoding (PNG images, UTF-8 text); random pixels make larger PNGs than real
digits do, so MNIST's decoding costs more here than on the real data.

    python scripts/bench/prepare_tfds_reads.py DIR --small

writes the same datasets small (MNIST 24 + 8 images, IMDB 24 + 24 reviews and 4 unlabelled):
the real array_record files of `tests/data/tfds/` (without `downloads/`), which the tests read
without TensorFlow.
"""

import sys

import numpy as np
import tensorflow_datasets as tfds

D = sys.argv[1]
SMALL = '--small' in sys.argv[2:]
size = lambda n: {60000: 24, 25000: 24, 10000: 8, 100: 4}[n] if SMALL else n
MNIST = tfds.builder_cls('mnist')
IMDB = tfds.builder_cls('imdb_reviews')


class RandomMNIST(MNIST, skip_registration=True):
  name = 'mnist'
  def _split_generators(self, dl_manager):
    return {'train': self._gen(size(60000), 0), 'test': self._gen(size(10000), 1)}
  def _gen(self, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
      yield i, {'image': rng.integers(0, 256, (28, 28, 1), np.uint8),
                'label': int(rng.integers(10))}


WORDS = [f'w{i}' for i in range(5000)]

class RandomIMDB(IMDB, skip_registration=True):
  name = 'imdb_reviews'
  def _split_generators(self, dl_manager):
    return {'train': self._gen(size(25000), 0), 'test': self._gen(size(25000), 1),
            'unsupervised': self._gen(size(100), 2)}
  def _gen(self, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
      words = rng.choice(WORDS, size=int(rng.integers(50, 400)))
      yield i, {'text': ' '.join(words), 'label': int(rng.integers(2))}


for cls, kw in ((RandomMNIST, {}), (RandomIMDB, {'config': 'plain_text'})):
  b = cls(data_dir=D, file_format='array_record', **kw)
  b.download_and_prepare(download_config=tfds.download.DownloadConfig(
      download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  print(b.info.full_name, {k: v.num_examples for k, v in b.info.splits.items()})
