#!/bin/sh
# systemd-analyze verify on the generated unit; skip (77) without systemd.
command -v systemd-analyze >/dev/null 2>&1 || exit 77
out=$(systemd-analyze verify "$1" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] && [ -z "$out" ]
