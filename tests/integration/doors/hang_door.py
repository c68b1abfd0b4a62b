"""A door that never ends by itself: it records its pid and its child's
(a sleep in the same process group) in argv[1], then waits. With
``--ignore-hup`` it ignores SIGHUP (the BBS must then send SIGKILL)."""
import os
import signal
import subprocess
import sys
import time

if "--ignore-hup" in sys.argv:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"])
with open(sys.argv[1], "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}\n")
sys.stdout.write("Hanging around...\r\n")
sys.stdout.flush()
time.sleep(300)
