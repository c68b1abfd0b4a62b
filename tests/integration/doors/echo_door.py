"""A tiny stdio door for the tests: reads DOOR32.SYS (argv[1]), greets the
caller by the alias in it, echoes what they type until Enter, then says it
back with their name. Bytes in and out are raw (the BBS passes them on)."""
import os
import sys

lines = open(sys.argv[1], encoding="cp437").read().splitlines()
alias, node = lines[6], lines[10]
out = sys.stdout.buffer
out.write(f"Hello {alias} on node {node}! TERM={os.environ['TERM']} "
          f"size={os.environ['COLUMNS']}x{os.environ['LINES']} cwd={os.path.basename(os.getcwd())} "
          f"SBBSNNUM={os.environ['SBBSNNUM']} SBBSNODE={os.path.basename(os.environ['SBBSNODE'].rstrip('/'))}\r\n"
          "Say something: ".encode())
out.flush()
typed = bytearray()
while True:
    ch = sys.stdin.buffer.read(1)
    if not ch:
        sys.exit(3)
    if ch in b"\r\n":
        break
    typed += ch
    out.write(ch)
    out.flush()
out.write(f"\r\n{alias} said: {typed.decode('utf-8', 'replace')}\r\n".encode())
out.flush()
