#!/usr/bin/env bash
# The end of `make test`: one line per stage, then one line with every Python
# version that ran and its pytest counts, summed over its stages:
#
#   make test: 3.11.7 (pytest 9.0.2: 1210 passed, 34 skipped; pytest 8.4.2: ...), 3.12.1 (...)
#
# or `make test FAILED (<failed stages>): ...` when something failed.
#
#   scripts/test-summary.sh LOGS MAKE-STATUS START-EPOCH MINOR...
#
# LOGS holds what scripts/test-stage.sh wrote; MAKE-STATUS is the status of
# the make that ran the stages; MINOR... are the versions that should have run.
set -euo pipefail

logs=$1 make_status=$2 start=$3
shift 3
stages="$logs/stages.tsv"
touch "$stages"

# The last summary line of each pytest log, "-" for the other stages.
while IFS=$'\t' read -r name log pyver ptver status secs; do
  line=$(grep -E '([0-9]+ (passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)|no tests ran).* in [0-9.]+s' "$logs/$log" 2>/dev/null | tail -n 1 || true)
  line=$(sed -E 's/^=+ //; s/ =+$//; s/ in [0-9.]+s( \([0-9:]+\))?$//' <<<"$line")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$pyver" "$ptver" "$status" "$secs" "${line:--}"
done <"$stages" | awk -F'\t' -v make_status="$make_status" -v elapsed=$(($(date +%s) - start)) -v minors="$*" '
function duration(s) { return sprintf("%dm%02ds", s / 60, s % 60) }
function plural(n, word) { return n " " word (n == 1 ? "" : "s") }
{
  name = $1; pyver = $2; ptver = $3; status = $4; secs = $5; line = $6
  # 5: pytest selected no test (the --integration runs may)
  failed_stage = status != 0 && status != 5
  verdict = !failed_stage ? "ok" : status == 124 ? "TIMEOUT" : "FAILED"
  result = line != "-" ? line : status == 5 ? "no tests ran" : ""
  if (failed_stage) {
    result = result (result == "" ? "" : " ") "(exit " status ")"
    failures = failures (failures == "" ? "" : ", ") pyver " " name
  }
  row = sprintf("make test: %-8s %-14s %-20s %7s  %-7s %s", pyver, (ptver == "-" ? "" : "pytest " ptver), name, duration(secs), verdict, result)
  sub(/ +$/, "", row)
  print row
  total += secs
  if (ptver == "-") next
  if (!(pyver in seen)) { seen[pyver] = 1; versions[++nversions] = pyver }
  key = pyver SUBSEP ptver
  if (!(key in pytests)) { pytests[key] = 1; order[pyver] = order[pyver] SUBSEP ptver }
  if (line == "-") { nosummary[key]++; next }
  n = split(line, parts, ", ")
  for (i = 1; i <= n; i++) {
    split(parts[i], word, " ")
    kind = word[2]
    if (kind == "error") kind = "errors"
    count[key, kind] += word[1]
  }
}
END {
  printf "make test: the stages took %s; %s in all, installs included\n", duration(total), duration(elapsed)
  out = ""
  split("failed passed skipped xfailed xpassed errors", kinds, " ")
  for (v = 1; v <= nversions; v++) {
    pyver = versions[v]
    m = split(substr(order[pyver], 2), ptvers, SUBSEP)
    text = ""
    for (p = 1; p <= m; p++) {
      key = pyver SUBSEP ptvers[p]
      counts = ""
      for (k = 1; k <= 6; k++) {
        c = count[key, kinds[k]]
        if (c == "" || c == 0) continue
        counts = counts (counts == "" ? "" : ", ") (kinds[k] == "errors" ? plural(c, "error") : c " " kinds[k])
      }
      if (nosummary[key]) counts = counts (counts == "" ? "" : ", ") plural(nosummary[key], "run") " with no counts"
      text = text (text == "" ? "" : "; ") "pytest " ptvers[p] ": " (counts == "" ? "no tests ran" : counts)
    }
    out = out (out == "" ? "" : ", ") pyver " (" text ")"
    split(pyver, parts, ".")
    ran[parts[1] "." parts[2]] = 1
  }
  nminors = split(minors, wanted, " ")
  for (i = 1; i <= nminors; i++)
    if (!(wanted[i] in ran)) out = out (out == "" ? "" : ", ") wanted[i] " (not run)"
  if (failures == "" && make_status != 0) failures = "see above"
  print "make test" (failures == "" ? "" : " FAILED (" failures ")") ": " (out == "" ? "nothing ran" : out)
}'
