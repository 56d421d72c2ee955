# tests/bench/bench.cmake - the benchmark tools (included by CMakeLists.txt).
# The C echo and relay servers and the load generator are built with -O2 whatever the
# build type and without sanitizers (they are the yardstick, not the thing
# under test), into <build>/bench/.  Run the benchmark with
# tests/bench/run.sh <build>; it is not a CTest entry, except for one quick
# smoke run that checks the tools work and asserts nothing about speed.
foreach(tool echo_server relay_server loadgen)
  add_executable(bench_${tool} ${CMAKE_SOURCE_DIR}/tests/bench/${tool}.c)
  get_target_property(opts bench_${tool} COMPILE_OPTIONS)
  list(FILTER opts EXCLUDE REGEX "sanitize|omit-frame-pointer")
  set_target_properties(bench_${tool} PROPERTIES
    OUTPUT_NAME ${tool}
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench
    COMPILE_OPTIONS "${opts};-O2"
    LINK_OPTIONS "")
endforeach()

# Smoke run: a few seconds, checks that the tools and the driver work
# (and that every server answers correctly); asserts nothing about speed.
add_test(NAME bench_smoke
  COMMAND ${CMAKE_SOURCE_DIR}/tests/bench/run.sh ${CMAKE_BINARY_DIR} --quick)
set_tests_properties(bench_smoke PROPERTIES TIMEOUT 180)   # 17 s idle, > 60 s at load 30

# The same for the peer comparison (compare.py), through to its table:
# every installed server answers each workload correctly and each row has
# luasock's figure; speed is not asserted.  pp1 and pp50 are left out:
# pp1000 runs the same code.
add_test(NAME bench_compare_smoke
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/bench/compare.py ${CMAKE_BINARY_DIR} --quick
          --strict --workloads pp1000,workers,bulk,relay,relayc,http,resp,idle,startup)
set_tests_properties(bench_compare_smoke PROPERTIES TIMEOUT 240)   # 20 s idle

# The same on a machine without git: PATH is made of links to every
# program but git, and the table must still print, with "unknown commit".
add_test(NAME bench_compare_nogit
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/bench/nogit.sh ${CMAKE_BINARY_DIR})
set_tests_properties(bench_compare_nogit PROPERTIES TIMEOUT 120)   # 9 s at load 11
