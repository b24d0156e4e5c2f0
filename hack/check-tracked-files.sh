#!/usr/bin/env bash
# Fails when the repository tracks a build output: any file over 1 MB, or an executable
# binary (ELF, Mach-O, PE). The repository holds sources only.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=$((1024 * 1024))
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "tracked file over 1 MB: $f ($size bytes)" >&2
    bad=1
  fi
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case "$magic" in
    7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | 4d5a*)
      echo "tracked executable binary: $f" >&2
      bad=1
      ;;
  esac
done < <(git ls-files -z)
exit "$bad"
