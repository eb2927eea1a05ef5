"""Processes the kit starts end with the process that started them.

``run_grid`` trains in worker processes. When the process that started them dies (Ctrl-C or a time limit
on ``make reproduce``, the out-of-memory killer, a closed notebook kernel), nothing tells the workers: they
would finish their run, then wait for ever for the next one, holding their memory (and, on a GPU, a CUDA
context each). ``exit_with_parent`` gives such a child a watchdog thread that ends it within a second of
its parent's death, whatever killed the parent (SIGKILL included).

``raise_on_sigterm`` lets a command's clean-up code (``finally``) run when it is stopped by SIGTERM, what
``timeout``, ``kill`` and most schedulers send, as it does for Ctrl-C.
"""
import os
import signal
import threading
import time


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> threading.Thread:
    """Start a daemon thread that ends this process (exit status 1) once ``parent_pid`` is no longer its
    parent, checked every ``interval`` seconds. Returns the thread.

    A dead parent's children are adopted by another process (init, or a sub-reaper), so a changed
    ``os.getppid()`` means the parent is gone. ``os._exit`` ends the process at once, even in the middle
    of a training step; the run's last finished epoch stays on disk to resume from.
    """
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def raise_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, as Ctrl-C does, so ``finally`` blocks run."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, handler)
