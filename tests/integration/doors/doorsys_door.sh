#!/bin/sh
# A shell door for the tests: the caller's name and level from DOOR.SYS
# (lines 10 and 15, CR LF ended), then every byte value 0-255 once (binary
# safety: IAC 0xFF included), then it waits for one line and exits.
drop="$1/DOOR.SYS"
name=$(sed -n 10p "$drop" | tr -d '\r')
level=$(sed -n 15p "$drop" | tr -d '\r')
printf 'DOOR.SYS says %s, level %s\r\n' "$name" "$level"
printf 'BYTES<'
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)))'
printf '>END\r\n'
read -r reply
printf 'bye %s\r\n' "$reply"
