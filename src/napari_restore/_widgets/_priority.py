"""CPU priority of the plugin's background threads (jobs, imports, plot drawing).

On a machine with few cores a busy background thread leaves the viewer's thread (and the
display server) waiting for a core; with a lower priority they get it first (issue 12).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

#: Niceness of the plugin's background threads (Linux). The viewer's thread and the display
#: server keep the default 0, so on a machine with few cores they get the CPU first.
JOB_NICENESS = 10


def lower_thread_priority(niceness: int = JOB_NICENESS) -> bool:
    """Give the calling thread, and the threads it starts later, a lower CPU priority (Linux).

    A job that keeps every core busy (torch's intra-op threads are started by the job's
    thread and inherit its niceness) otherwise leaves the viewer's thread waiting for a core
    for hundreds of milliseconds on a 2-core machine. Unprivileged processes cannot lower
    niceness again, so the thread keeps it: call it only from the plugin's own background
    threads.

    Returns
    -------
    bool
        Whether the thread's niceness is now at least ``niceness``.
    """
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()  # on Linux, PRIO_PROCESS with a thread id: that thread
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        return os.getpriority(os.PRIO_PROCESS, tid) >= niceness
    return False
