"""A multi-process run watched from outside JAX, so that a lost process ends the others with one
line that says what happened and where the rerun starts, not a stack dump.

When a process of a multi-process run dies (its host lost, ``kill -9``, the OOM killer), JAX's
coordination service notices that its heartbeats stopped (``--heartbeat_timeout_s``) and ends
every other process through a fatal check in C++: SIGABRT, a C++ and Python stack dump, and
nothing that names the lost process in words or the checkpoint a rerun will start from. Python
cannot catch that abort in the process that aborts. So the command line of a multi-process run
(`comparenets.main`) starts the training as a child process and watches it from a parent that
starts no JAX backend and never joins the cluster (it imports JAX, as every module of the
command line does; an import alone starts no backend):

* the child's stdout is the parent's; its stderr goes through a pipe that the parent copies to its
  own stderr as it comes (whole lines and tqdm's carriage returns), so the console and the log
  read as before;
* SIGTERM, SIGHUP and SIGINT sent to the parent are passed to the child (checkpoint and exit 0,
  as in one process; a second SIGINT interrupts). The child has its own session, so a terminal's
  Ctrl-C reaches it once, through the parent, not twice; and it asks Linux for SIGTERM should the
  parent die first (``PR_SET_PDEATHSIG``), which stops it like ``kill -TERM``;
* from the first line of a fatal report (the coordination service's "Terminating process", a C++
  ``terminate``, "Fatal Python error") the child's stderr goes to a file instead of the console;
  when the child then dies, the parent prints one ``comparenets: error:`` line naming the lost
  process, the newest complete checkpoint and that file, and exits with `LOST_EXIT_CODE`. A child
  that ends any other way ends the parent the same way (its exit status passed on; a report held
  back is printed after all).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
from typing import Sequence

from comparenets import checkpointing
from comparenets import workdir as workdirs
from comparenets.stopping import StopRequest

# Set in the child's environment (to the parent's pid): the child trains, it does not watch.
WATCHED_ENV = 'COMPARENETS_WATCHED'
# Set when the parent's stderr is a terminal: the child's progress bar still shows through it.
TERMINAL_ENV = 'COMPARENETS_STDERR_TTY'
# sysexits.h's EX_TEMPFAIL, "a temporary failure: the user is invited to retry": the same
# command on every host resumes. (2: a config that cannot run; 3: NaN/Inf.)
LOST_EXIT_CODE = 75

# The first line of a report that ends the process: from here on the child's stderr is held.
_FATAL = re.compile(
    rb'Polled an error from coordination service|Use error polling to propagate the following '
    rb'error|Terminating process because the JAX distributed service|terminate called after '
    rb'throwing|Fatal Python error|\*\*\* Check failure stack trace')
_HEARTBEATS = re.compile(r'stopped sending heartbeats\):\n((?:.*\n)*?)The tasks have crashed')
_COORDINATOR = ('Failed to send RPC to coordination service', 'the leader task was preempted')
_COLLECTIVE = ('gloo::', 'Connection reset by peer', 'Connection closed by peer')
_TAIL = 1 << 20  # bytes of the held report kept, and of the stderr before it


def is_watched() -> bool:
  """Whether this process is the child of a watching parent."""
  return WATCHED_ENV in os.environ


def follow_parent() -> None:
  """In the child: SIGTERM to this process when the parent dies (Linux; elsewhere nothing), so
  that a parent killed outright does not leave the training running unwatched."""
  parent = int(os.environ.get(WATCHED_ENV, '0') or 0)
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    return
  if parent and os.getppid() != parent:  # the parent died before prctl: stop at once
    os.kill(os.getpid(), signal.SIGTERM)


def watch(argv: Sequence[str], workdir: str | None, process_id: int | None,
          num_processes: int | None, heartbeat_timeout_s: int) -> int:
  """Runs ``python -m comparenets.main ARGV`` as a watched child; returns the exit status.

  ``process_id`` and ``num_processes`` (None where the cluster tells JAX, not us) and
  ``heartbeat_timeout_s`` only word the line.
  """
  env = dict(os.environ, **{WATCHED_ENV: str(os.getpid())})
  if os.isatty(2):
    env[TERMINAL_ENV] = '1'
  child = subprocess.Popen([sys.executable, '-m', 'comparenets.main', *argv], env=env,
                           stderr=subprocess.PIPE, start_new_session=True)
  forwarded = []

  def forward(signum, frame):
    del frame
    forwarded.append(signum)
    if child.poll() is None:
      child.send_signal(signum)

  previous = {sig: signal.signal(sig, forward) for sig in StopRequest.SIGNALS}
  try:
    if StopRequest.signal:  # arrived while this process started: the child is told at once
      forward(getattr(signal, StopRequest.signal), None)
    relay = _Relay(child.stderr.fileno())
    relay.pump()
    code = child.wait()
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  if code == 0 or (code > 0 and not relay.report and not (code == 1 and _lost(relay.tail))):
    if relay.report:  # held back, and the run did not die of it: shown after all
      _write(relay.report)
    return code  # 2 and 3 printed their own line; 1 is a traceback, shown as it came
  if code < 0 and -code in forwarded and not relay.report:  # e.g. TERM while Python started
    return 128 - code  # as a shell reports a process that the signal ended
  line = describe(code, relay, process_id, num_processes, heartbeat_timeout_s, workdir)
  print(f'comparenets: error: {line}', file=sys.stderr, flush=True)
  return LOST_EXIT_CODE


def _lost(tail: bytes) -> bool:
  """Whether a Python traceback (exit status 1) is a collective or the coordination service
  failing because another process went away."""
  text = tail.decode(errors='replace')
  return any(s in text for s in _COORDINATOR + _COLLECTIVE) or bool(_HEARTBEATS.search(text))


def describe(code: int, relay: '_Relay', process_id: int | None, num_processes: int | None,
             heartbeat_timeout_s: int, workdir: str | None) -> str:
  """The error line (after ``comparenets: error:``) for a child that ended with ``code``."""
  text = (relay.tail + relay.report).decode(errors='replace')
  of = f' of {num_processes}' if num_processes else ''
  me = f'process {process_id}{of} (this one)' if process_id is not None else 'this process'
  if (found := _HEARTBEATS.search(text)):
    lost = sorted({int(m) for m in re.findall(r'(\d+)\s*$', found.group(1), re.M)})
    named = (f'process {lost[0]}' if len(lost) == 1 else
             f'processes {", ".join(map(str, lost))}') if lost else 'another process'
    what = (f'{named}{of} {"was" if len(lost) < 2 else "were"} lost (no heartbeat for '
            f'{heartbeat_timeout_s} s, --heartbeat_timeout_s')
  elif any(s in text for s in _COORDINATOR):
    what = (f"process 0{of} was lost (it runs JAX's coordination service, and that stopped "
            'answering')
  elif any(s in text for s in _COLLECTIVE):  # before JAX noticed: gloo saw the socket close
    other = (f'process {1 - process_id}{of}' if num_processes == 2 and process_id in (0, 1) else
             'another process')  # of two, the other one
    what = f'{other} was lost (a collective operation with it failed'
  else:  # this process itself: killed (the OOM killer, kill -9) or crashed
    what = f'{me} was lost ({_how(code)}'
  if relay.report:
    what += f"; JAX's report is in {_save(relay.report, process_id)}"
  return f'{what}); {_newest_checkpoint(workdir)}'


def _how(code: int) -> str:
  if code >= 0:
    return f'exit status {code}'
  try:
    return f'killed by {signal.Signals(-code).name}'
  except ValueError:
    return f'killed by signal {-code}'


def _newest_checkpoint(workdir: str | None) -> str:
  """Where the rerun starts, in words: Orbax's newest finished step."""
  if workdir is None:
    return 'run the same command on every host to resume from the newest complete checkpoint'
  directory = workdirs.join(workdir, 'checkpoints')
  steps = checkpointing.complete_steps(directory)
  if not steps:
    return (f'no checkpoint was complete in {directory}; run the same command on every host '
            'to start again')
  return (f'the newest complete checkpoint is step {max(steps)} in {directory}; run the same '
          'command on every host to resume from it')


def _save(report: bytes, process_id: int | None) -> str:
  """The held report in a file of this host's temporary directory; its path."""
  fd, path = tempfile.mkstemp(
      prefix=f'comparenets-process-{"x" if process_id is None else process_id}-', suffix='.log')
  with os.fdopen(fd, 'wb') as f:
    f.write(report)
  return path


def _write(data: bytes) -> None:
  """To this process's stderr, all of it; a closed terminal (a dropped ssh session) is no
  reason to stop watching."""
  try:
    while data:
      data = data[os.write(2, data):]
  except OSError:
    pass


class _Relay:
  """Copies the child's stderr to ours as it comes, keeps its last megabyte (``tail``) to read
  the cause of death in, and holds everything from the first line of a fatal report on
  (``report``) instead of showing it."""

  def __init__(self, fd: int):
    self.fd = fd
    self.tail = b''
    self.report = b''

  def pump(self) -> None:
    pending = b''
    while chunk := os.read(self.fd, 1 << 16):
      pending += chunk
      cut = max(pending.rfind(b'\n'), pending.rfind(b'\r')) + 1  # whole lines and bar updates
      if cut:
        self._take(pending[:cut])
        pending = pending[cut:]
    if pending:
      self._take(pending)

  def _take(self, data: bytes) -> None:
    if not self.report and (found := _FATAL.search(data)):
      start = max(data.rfind(b'\n', 0, found.start()), data.rfind(b'\r', 0, found.start())) + 1
      data, self.report = data[:start], data[start:]
    elif self.report:
      self.report = (self.report + data)[:_TAIL]
      return
    self.tail = (self.tail + data)[-_TAIL:]
    _write(data)
