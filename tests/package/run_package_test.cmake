# cmake -P script behind the ctest package.consumer (see CMakeLists.txt next to it):
#   1. cmake --install <TURRET_BUILD_DIR> --prefix <tmp>/prefix --component dev
#   2. configure tests/package/consumer with -DCMAKE_PREFIX_PATH=<tmp>/prefix (same compiler, generator, launcher)
#   3. build it (a program and a turretd plugin), run the program, check its output
#   4. remove <tmp> (always, unless TURRET_PACKAGE_TEST_KEEP=1)
foreach(v TURRET_BUILD_DIR CONSUMER_SOURCE_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "run_package_test.cmake: -D${v}=... is required")
  endif()
endforeach()

if(DEFINED ENV{TMPDIR} AND IS_DIRECTORY "$ENV{TMPDIR}")
  set(tmp_root "$ENV{TMPDIR}")
else()
  set(tmp_root "/tmp")
endif()
string(RANDOM LENGTH 10 suffix)
set(work "${tmp_root}/turret-package-test-${suffix}")
set(prefix "${work}/prefix")
set(build "${work}/build")
file(MAKE_DIRECTORY "${work}")

function(finish ok message_text)
  if("$ENV{TURRET_PACKAGE_TEST_KEEP}" STREQUAL "1")
    message(STATUS "kept ${work}")
  else()
    file(REMOVE_RECURSE "${work}")
  endif()
  if(ok)
    message(STATUS "${message_text}")
  else()
    message(FATAL_ERROR "${message_text}")
  endif()
endfunction()

# Runs a command; on failure prints its output, cleans up and fails. Sets step_output in the caller.
macro(step name)
  string(TIMESTAMP _t0 "%s")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE step_output ERROR_VARIABLE step_output)
  string(TIMESTAMP _t1 "%s")
  math(EXPR _dt "${_t1} - ${_t0}")
  if(NOT _rc EQUAL 0)
    finish(FALSE "package test: step '${name}' failed (${_rc}):\n${step_output}")
  endif()
  message(STATUS "step '${name}' ok (${_dt} s)")
endmacro()

step(install ${CMAKE_COMMAND} --install "${TURRET_BUILD_DIR}" --prefix "${prefix}" --component dev)
foreach(h turret/service.hpp turret/middleware/builtin.hpp turret/middleware/timeout.hpp
          turret/middleware/concurrency_limit.hpp turret/middleware/fault.hpp turret/middleware/testing/mock_service.hpp)
  if(NOT EXISTS "${prefix}/include/${h}")
    finish(FALSE "package test: ${h} missing under ${prefix}/include")
  endif()
endforeach()
# Nothing but turret/ on a consumer's include path: no bare top-level headers (the old <builtin.hpp>, <timeout/...>).
file(GLOB top_level RELATIVE "${prefix}/include" "${prefix}/include/*")
if(NOT top_level STREQUAL "turret")
  finish(FALSE "package test: ${prefix}/include holds more than turret/: ${top_level}")
endif()

set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${build}" -G "${GENERATOR}"
  "-DCMAKE_PREFIX_PATH=${prefix}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF           # the installed package, never a registered build tree
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(COMPILER_LAUNCHER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER_LAUNCHER=${COMPILER_LAUNCHER}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()
if(SANITIZE_FLAGS)
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${SANITIZE_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${SANITIZE_FLAGS}")
endif()
step(configure ${CMAKE_COMMAND} ${configure_args})
if(NOT step_output MATCHES "turret [0-9.]+ from ([^\n]*)")
  finish(FALSE "package test: consumer did not report the turret package it found:\n${step_output}")
endif()
set(found_dir "${CMAKE_MATCH_1}")
file(REAL_PATH "${found_dir}" found_dir)
file(REAL_PATH "${prefix}" real_prefix)
string(FIND "${found_dir}" "${real_prefix}/" pos)
if(NOT pos EQUAL 0)
  finish(FALSE "package test: turret found in ${found_dir}, not in the installed prefix ${prefix}")
endif()

# ccache: make the temp paths relative so that a rerun hits the cache.
step(build ${CMAKE_COMMAND} -E env "CCACHE_BASEDIR=${work}" ${CMAKE_COMMAND} --build "${build}")

if(NOT EXISTS "${build}/libconsumer_plugin.so")
  finish(FALSE "package test: the plugin built against turret::plugin is missing (${build}/libconsumer_plugin.so)")
endif()

step(run "${build}/consumer")
message(STATUS "consumer output:\n${step_output}")
foreach(line "static: HELLO!" "static timeout: error: request timed out" "config: WORLD?"
             "config timeout: error: request timed out" "served: OVER TCP?"
             "served: -ERR request timed out" "served: AGAIN?" "consumer: ok")
  string(FIND "${step_output}" "${line}\n" pos)
  if(pos EQUAL -1)
    finish(FALSE "package test: consumer output lacks '${line}'")
  endif()
endforeach()

finish(TRUE "package test passed")
