"""A door for io = pty: it reports whether it has a terminal, its size and
whether that terminal controls it, then reads a line in canonical mode
(the pty echoes and edits), says it back with the terminal's size then."""
import os
import sys

size = os.get_terminal_size(0)
try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    ctty = "yes"
except OSError:
    ctty = "no"
print(f"tty={sys.stdin.isatty()} size={size.columns}x{size.lines} ctty={ctty}")
line = input("Name a colour: ")
size = os.get_terminal_size(0)
print(f"You said {line.strip()}; size now {size.columns}x{size.lines}")
