# tests/bench/bench.cmake - the benchmark tools (included by CMakeLists.txt).
# The C echo server and the load generator are built with -O2 whatever the
# build type and without sanitizers (they are the yardstick, not the thing
# under test), into <build>/bench/.  Run the benchmark with
# tests/bench/run.sh <build>; it is not a CTest entry, except for one quick
# smoke run that checks the tools work and asserts nothing about speed.
foreach(tool echo_server loadgen)
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

# The same for the peer comparison (compare.py): every server that is
# installed answers each workload correctly; speed is not asserted.
add_test(NAME bench_compare_smoke
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/bench/compare.py ${CMAKE_BINARY_DIR}
          --quick --strict --workloads pp50,bulk,http,resp,startup)
set_tests_properties(bench_compare_smoke PROPERTIES TIMEOUT 120)

# For profiling (profile.sh ... lua-static) and to show what static
# linking is worth (run.sh --static): the same program with the library
# and Lua (the distribution's liblua5.4.a, which keeps its symbols, unlike
# the stripped .so) linked in.  Built on demand (cmake --build BUILD
# --target bench_luasock_static), only when that archive exists.
find_library(LUA_STATIC_LIB NAMES liblua5.4.a lua5.4.a)
if(LUA_STATIC_LIB)
  get_target_property(lib_sources luasock_lib SOURCES)
  get_target_property(exe_sources luasock SOURCES)
  add_executable(bench_luasock_static EXCLUDE_FROM_ALL ${lib_sources} ${exe_sources})
  target_include_directories(bench_luasock_static PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${LUA_INCLUDE_DIRS} ${READLINE_INCLUDE})
  target_link_libraries(bench_luasock_static PRIVATE
    ${LUA_STATIC_LIB} ${READLINE_LIB} Threads::Threads m dl)
  set_target_properties(bench_luasock_static PROPERTIES
    OUTPUT_NAME luasock-static
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench
    ENABLE_EXPORTS ON)   # C modules loaded with require need the Lua API
endif()
