# Installs the built amorsize into a scratch prefix, then configures and builds, each with its own
# CMakeLists.txt, docs/examples (find_package(amorsize), amorsize::amorsize) and, when the runner
# is built, jobs/example, a job of one's own hosted with amorsize::runner.
file(REMOVE_RECURSE ${WORK_DIR})
function(run_step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building the example failed (${rc}): ${ARGV}")
  endif()
endfunction()
run_step(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
# Documentation code builds clean: strict warnings, as errors.
set(flags "-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wformat=2 -Werror")
if(SANITIZE)
  string(APPEND flags " -fsanitize=${SANITIZE}")
endif()
run_step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/docs/examples -B ${WORK_DIR}/build -G ${GENERATOR}
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_CXX_FLAGS=${flags})
run_step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
if(WITH_RUNNER)
  run_step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/jobs/example -B ${WORK_DIR}/build-primes -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_CXX_FLAGS=${flags})
  run_step(${CMAKE_COMMAND} --build ${WORK_DIR}/build-primes)
endif()
