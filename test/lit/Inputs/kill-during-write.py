"""Kills a command while it writes its atomic output, and says what is left.

  kill-during-write.py KILL|INT|TERM[@MS] OUT CMD...

Runs CMD and polls OUT's directory for the temporary the atomic-output
primitive writes ("OUT.tmp-<pid>-XXXXXX"); as soon as one appears (or MS
milliseconds after, to interrupt the write at a later point) the command
gets SIGSTOP, and then, unless its output already reached OUT, SIGKILL,
SIGINT or SIGTERM: half-way through the write. A command that finished
before a temporary was seen is run again (up to 200 times; the tiny fixtures
write in milliseconds). Prints "caught", then whether OUT exists and how
many temporaries remain ("absent" and "temporaries: 0" is what an atomic
output must leave after SIGINT; SIGKILL cannot be handled, so its temporary
stays, but never the output). An OUT that exists before is left alone (the
run replaces it only on success), else an OUT a finished run wrote is
removed before the next try.
"""
import os
import shutil
import signal
import subprocess
import sys

import time

name, _, delay = sys.argv[1].partition("@")
sig = {"KILL": signal.SIGKILL, "INT": signal.SIGINT,
       "TERM": signal.SIGTERM}[name]
delay = int(delay or 0) / 1000.0
out = os.path.abspath(sys.argv[2])
cmd = sys.argv[3:]
parent, base = os.path.dirname(out), os.path.basename(out) + ".tmp-"


def temporaries():
    return [n for n in os.listdir(parent) if n.startswith(base)]


def wait_stopped(pid):
    """Returns once pid is stopped (or has exited), at most after 10 s."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            with open("/proc/%d/stat" % pid) as f:
                # The state follows the command name, which is in parentheses.
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            return
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.0005)


existed = os.path.exists(out)
inode = os.stat(out).st_ino if existed else None


def too_late():
    """With the command stopped: did its output already reach OUT (a new
    output renamed into place, an earlier one swapped out)? Then the signal
    would not come half-way, and the try is run again."""
    if not existed:
        return os.path.exists(out)
    return os.path.exists(out) and os.stat(out).st_ino != inode


for attempt in range(200):
    if not existed and os.path.isdir(out):
        shutil.rmtree(out)
    elif not existed and os.path.exists(out):
        os.remove(out)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    caught = False
    while p.poll() is None:
        if temporaries():
            if delay:
                time.sleep(delay)
            # Stopped first, so that what is on disk can be looked at before
            # the signal is sent. SIGSTOP is delivered asynchronously: until
            # the command is seen stopped it may still finish a rename that
            # too_late() did not see yet (a SIGKILL then found the output in
            # place).
            p.send_signal(signal.SIGSTOP)
            wait_stopped(p.pid)
            if too_late():
                p.kill()
            else:
                p.send_signal(sig)
                caught = True
            p.send_signal(signal.SIGCONT)
            break
    p.wait()
    if caught and p.returncode != 0:
        print("caught")
        print("output", "present" if os.path.exists(out) else "absent")
        print("temporaries:", len(temporaries()))
        sys.exit(0)
    # The command finished first, or got too far: clean up, try again (an
    # earlier output it replaced is now its own, whole).
    if existed:
        inode = os.stat(out).st_ino
    for t in temporaries():
        shutil.rmtree(os.path.join(parent, t), ignore_errors=True)
print("never caught the write")
sys.exit(1)
