"""Times the sentiment task's set-up (`Sentiment.splits`) and its training batches in one process
of a run, on an IMDB-shaped dataset (`write_imdb_records.py`); prints one JSON line.

    python scripts/bench/imdb_setup.py --data_dir=/tmp/imdbbench
    # process I of 2, joined over 127.0.0.1 (start both):
    python scripts/bench/imdb_setup.py --data_dir=/tmp/imdbbench --num_processes=2 \
        --process_id=I --coordinator_address=127.0.0.1:PORT

'setup_s': seconds of ``splits()`` (reading, tokenizing, the vocabulary, and whatever is encoded
up front); 'rss_mb': the process's peak resident memory after it; 'batch_examples_per_s': this
process's rows of ``--steps`` training batches of ``--batch_size``; 'vocab_sha': a hash of the
vocabulary (identical across processes and process counts).
"""

import hashlib
import json
import resource
import time

from absl import app
from absl import flags

from comparenets import distributed
from comparenets import parallel
from comparenets import tasks

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', '/tmp/imdbbench', 'where imdb_reviews is prepared')
flags.DEFINE_integer('batch_size', 64, 'global training batch')
flags.DEFINE_integer('steps', 200, 'training batches read')
flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0')
flags.DEFINE_integer('num_processes', None, 'processes of the run')
flags.DEFINE_integer('process_id', None, 'this process')


def main(_):
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  task = tasks.build('sentiment', data_dir=FLAGS.data_dir)
  start = time.perf_counter()
  task.splits()
  setup = time.perf_counter() - start
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  sampler = task.train_sampler(FLAGS.batch_size, 0)
  index, count = parallel.this_process()
  start = time.perf_counter()
  rows = sum(len(sampler.batch(s, index, count)['label']) for s in range(FLAGS.steps))
  rate = rows / (time.perf_counter() - start)
  vocab = hashlib.sha256(json.dumps(sorted(task.vocab.items())).encode()).hexdigest()[:12]
  print(json.dumps({'process': index, 'processes': count, 'setup_s': round(setup, 2),
                    'rss_mb': round(rss), 'batch_examples_per_s': round(rate),
                    'vocab_sha': vocab}), flush=True)


if __name__ == '__main__':
  app.run(main)
