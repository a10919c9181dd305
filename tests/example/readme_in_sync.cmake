# Checks that the README shows the examples as they are: in "Your own program under mpirun or srun",
# its ```cpp block is docs/examples/record_digests.cpp from `int main(` on and its last ```bash block
# record_digests.sbatch; in "A job of your own", its ```cpp block is jobs/example/primes.cpp from
# `struct primes_job {` on; in "Stopping a call, timeouts, and resuming a call: the journal", its ```cpp
# block is docs/examples/resume_with_journal.cpp from its first #include on.
file(READ ${SOURCE_DIR}/README.md readme)

# Returns in `out` the README's section under `heading`, up to the next heading of its level or above.
function(readme_section heading out)
  string(FIND "${readme}" "${heading}\n" start)
  if(start EQUAL -1)
    message(FATAL_ERROR "README.md has no heading '${heading}'")
  endif()
  string(SUBSTRING "${readme}" ${start} -1 section)
  string(LENGTH "${heading}" skip)
  string(SUBSTRING "${section}" ${skip} -1 body)
  string(REGEX MATCH "^#+" level "${heading}")
  string(FIND "${body}" "\n${level} " end)
  string(SUBSTRING "${body}" 0 ${end} body)
  set(${out} "${body}" PARENT_SCOPE)
endfunction()

# Returns in `out` the body of the block of `section` that starts with `fence` (its last one when `last` is set).
function(fenced_block section fence last out)
  if(last)
    string(FIND "${section}" "${fence}" at REVERSE)
  else()
    string(FIND "${section}" "${fence}" at)
  endif()
  if(at EQUAL -1)
    message(FATAL_ERROR "README.md's section has no ${fence} block")
  endif()
  string(LENGTH "${fence}" skip)
  math(EXPR at "${at} + ${skip}")
  string(SUBSTRING "${section}" ${at} -1 rest)
  string(FIND "${rest}" "```" close)
  string(SUBSTRING "${rest}" 0 ${close} body)
  set(${out} "${body}" PARENT_SCOPE)
endfunction()

# Fails unless the block of `section` that starts with `fence` is `file` from the text `from` on.
function(check_shown section fence last file from)
  file(READ ${SOURCE_DIR}/${file} text)
  string(FIND "${text}" "${from}" at)
  string(SUBSTRING "${text}" ${at} -1 text)
  fenced_block("${section}" "${fence}" ${last} shown)
  if(NOT shown STREQUAL text)
    message(FATAL_ERROR "README.md differs from ${file} (from '${from}' on): copy it again")
  endif()
endfunction()

readme_section("## Your own program under mpirun or srun" program_section)
check_shown("${program_section}" "```cpp\n" FALSE docs/examples/record_digests.cpp "int main(")
check_shown("${program_section}" "```bash\n" TRUE docs/examples/record_digests.sbatch "")
readme_section("### Stopping a call, timeouts, and resuming a call: the journal" journal_section)
check_shown("${journal_section}" "```cpp\n" FALSE docs/examples/resume_with_journal.cpp "#include <amorsize/amorsize.hpp>")
readme_section("### A job of your own" job_section)
check_shown("${job_section}" "```cpp\n" FALSE jobs/example/primes.cpp "struct primes_job {")
message(STATUS "README.md shows docs/examples and jobs/example as they are")
