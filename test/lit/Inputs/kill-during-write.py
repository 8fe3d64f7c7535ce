"""Kills a command while it writes its atomic output, and says what is left.

  kill-during-write.py KILL|INT OUT CMD...

Runs CMD and polls OUT's directory for the temporary the atomic-output
primitive writes ("OUT.tmp-XXXXXX"); as soon as one appears the command gets
SIGKILL or SIGINT, i.e. half-way through the write. A command that finished
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

sig = {"KILL": signal.SIGKILL, "INT": signal.SIGINT}[sys.argv[1]]
out = os.path.abspath(sys.argv[2])
cmd = sys.argv[3:]
parent, base = os.path.dirname(out), os.path.basename(out) + ".tmp-"


def temporaries():
    return [n for n in os.listdir(parent) if n.startswith(base)]


existed = os.path.exists(out)
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
            p.send_signal(sig)
            caught = True
            break
    p.wait()
    if caught and p.returncode != 0:
        print("caught")
        print("attempts:", attempt + 1, file=sys.stderr)
        print("output", "present" if os.path.exists(out) else "absent")
        print("temporaries:", len(temporaries()))
        sys.exit(0)
    # The command finished first (or the signal came after the rename):
    # clean up and try again.
    for t in temporaries():
        shutil.rmtree(os.path.join(parent, t), ignore_errors=True)
print("never caught the write")
sys.exit(1)
