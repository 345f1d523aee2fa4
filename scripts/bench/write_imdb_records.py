"""Writes an IMDB-shaped TFDS dataset (imdb_reviews/plain_text 1.0.0, array_record) of random
reviews without TensorFlow, for timing the sentiment task's set-up where the real data cannot
be downloaded:

    python scripts/bench/write_imdb_records.py /tmp/imdbbench [--train=25000] [--test=25000]

Words are drawn from 100,000 (``w0``, ``w1``, ...) with Zipf's law (probability ~ 1/rank), 50
to 400 a review, so the vocabulary has a long tail of rare words as real reviews do (the
uniform 5,000 words of `prepare_tfds_reads.py` do not). The dataset's metadata is the test
fixture's (``tests/data/tfds``), its split lengths set to what is written; the records are
serialized by TFDS's own feature encoders and example serializer, as `tfds build` would.
"""

import json
import os
import shutil
import sys

from absl import app
from absl import flags
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer
from array_record.python import array_record_module

FLAGS = flags.FLAGS
flags.DEFINE_integer('train', 25000, 'training reviews')
flags.DEFINE_integer('test', 25000, 'test reviews')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, 'tests', 'data', 'tfds')
VERSION = os.path.join('imdb_reviews', 'plain_text', '1.0.0')
WORDS = 100_000


def main(argv):
  if len(argv) != 2:
    raise app.UsageError('usage: write_imdb_records.py DATA_DIR [--train=N] [--test=N]')
  target = os.path.join(argv[1], VERSION)
  shutil.rmtree(target, ignore_errors=True)
  shutil.copytree(os.path.join(FIXTURE, VERSION), target)
  builder = tfds.builder('imdb_reviews', data_dir=FIXTURE)
  features = builder.info.features
  serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
  p = 1.0 / np.arange(1, WORDS + 1)
  p /= p.sum()
  info_path = os.path.join(target, 'dataset_info.json')
  info = json.load(open(info_path))
  for split in info['splits']:
    n = {'train': FLAGS.train, 'test': FLAGS.test}.get(split['name'], 4)
    rng = np.random.default_rng(len(split['name']))
    path = os.path.join(target, f'imdb_reviews-{split["name"]}.array_record-00000-of-00001')
    writer = array_record_module.ArrayRecordWriter(path, 'group_size:1')
    for _ in range(n):
      words = rng.choice(WORDS, size=int(rng.integers(50, 400)), p=p)
      text = ' '.join(f'w{w}' for w in words)
      writer.write(serializer.serialize_example(features.encode_example(
          {'text': text, 'label': int(rng.integers(2))})))
    writer.close()
    split['shardLengths'] = [str(n)]
    split['numBytes'] = str(os.path.getsize(path))
  with open(info_path, 'w') as f:
    json.dump(info, f, indent=4)
  print(target, {s['name']: s['shardLengths'][0] for s in info['splits']}, file=sys.stderr)


if __name__ == '__main__':
  app.run(main)
