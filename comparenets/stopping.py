"""SIGTERM / SIGHUP / SIGINT as a request to stop cleanly, shared by the command lines and the train
loop.

SIGHUP counts like SIGTERM: a run started in the foreground of an ssh session (``gcloud ...
ssh --worker=all``, a terminal on a login node) gets it when the connection drops, and should
then save a checkpoint and exit 0 rather than die with the session.

The command line enters `StopRequest` before it imports anything heavy, so a signal that arrives
while JAX starts or the config loads is remembered, and the train loop (which enters it again)
sees it. Only the outermost entry installs and restores the handlers; handlers can only be
installed from the main thread (elsewhere, e.g. in a worker thread, signals keep their default).
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
  """Context manager; ``StopRequest.signal`` is the name of the first signal received or None.

  A second SIGINT raises KeyboardInterrupt at once, for a person who really means it.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
  signal: str | None = None
  _depth = 0
  _previous: dict = {}

  def __enter__(self) -> 'StopRequest':
    cls = type(self)
    if cls._depth == 0:
      cls.signal = None
      if threading.current_thread() is threading.main_thread():
        cls._previous = {sig: signal.signal(sig, cls._handle) for sig in cls.SIGNALS}
    cls._depth += 1
    return self

  @classmethod
  def _handle(cls, signum, frame):
    del frame
    if cls.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    cls.signal = signal.Signals(signum).name

  def __exit__(self, *exc) -> None:
    cls = type(self)
    cls._depth -= 1
    if cls._depth == 0:
      for sig, handler in cls._previous.items():
        signal.signal(sig, handler)
      cls._previous = {}
