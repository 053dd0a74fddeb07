#!/usr/bin/env bash
# The project's test command (`make test`, `.ci/run`): lint, typecheck, then every bun test.
# Ends with one line "N passed, N failed, N skipped" and a non-zero exit on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
status=0
bunx biome check . || status=1
bunx tsc --noEmit || status=1
bun test --timeout 1800000 ./core ./plugins ./secrets ./build.assets ./bench ./test 2>&1 | tee build/test.log
[ "${PIPESTATUS[0]}" = 0 ] || status=1
pass=$(grep -Eo '^ *[0-9]+ pass$' build/test.log | tail -1 | grep -Eo '[0-9]+')
fail=$(grep -Eo '^ *[0-9]+ fail$' build/test.log | tail -1 | grep -Eo '[0-9]+')
skip=$(grep -Eo '^ *[0-9]+ skip$' build/test.log | tail -1 | grep -Eo '[0-9]+')
[ "$status" = 0 ] || [ "${fail:-0}" != 0 ] || fail=$(( ${fail:-0} + 1 ))   # lint/typecheck failure counts once
echo "${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped"
[ "$status" = 0 ] && [ "${fail:-0}" = 0 ]
