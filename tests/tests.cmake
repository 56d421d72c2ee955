# tests/tests.cmake - test programs besides the busted specs (included by
# CMakeLists.txt when BUILD_TESTING is on).  The embedding program is built
# against the build tree and run (embed), then again against an installed
# prefix through pkg-config, beside the installed luasock (embed_installed);
# two states run on two threads of one program (embed_threads); the library
# exports its public API only (exports).
add_executable(embed ${CMAKE_SOURCE_DIR}/tests/embed/embed.c)
target_link_libraries(embed PRIVATE luasock_lib)
add_test(NAME embed COMMAND embed $<TARGET_FILE_DIR:luasock_lib>)
set_tests_properties(embed PROPERTIES TIMEOUT 30)

# The shared library and the module for lua5.4 export luasock.h's
# functions and nothing else.
add_test(NAME exports
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/embed/exports.sh $<TARGET_FILE:luasock_lib>)
set_tests_properties(exports PROPERTIES TIMEOUT 30)
add_test(NAME statics
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/embed/statics.sh $<TARGET_FILE:luasock_lib>)
set_tests_properties(statics PROPERTIES TIMEOUT 30)
add_test(NAME module_exports
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/embed/exports.sh $<TARGET_FILE:luasock_module>
          luaopen_luasock)
set_tests_properties(module_exports PROPERTIES TIMEOUT 30)

# No module file handles an interrupted syscall itself: the I/O driver's
# one policy applies to every call.
add_test(NAME eintr_in_driver
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/build/eintr.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(eintr_in_driver PROPERTIES TIMEOUT 30)

# A libssl.so.<major> with none of OpenSSL's functions, in a directory of
# its own (tls_ctx_spec puts it first in LD_LIBRARY_PATH).
string(REGEX MATCH "^[0-9]+" openssl_major "${OPENSSL_VERSION}")
add_library(nossl SHARED ${CMAKE_SOURCE_DIR}/tests/faults/nossl.c)
set_target_properties(nossl PROPERTIES OUTPUT_NAME ssl SUFFIX ".so.${openssl_major}"
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/nossl)

# Two states, each with its own loop, on two threads of one program.
add_executable(embed_threads ${CMAKE_SOURCE_DIR}/tests/embed/threads.c)
target_link_libraries(embed_threads PRIVATE luasock_lib Threads::Threads)
add_test(NAME embed_threads COMMAND embed_threads)
set_tests_properties(embed_threads PROPERTIES TIMEOUT 60)

# embed compared the library path in /proc/self/maps (always the real path)
# with the libdir it was given, as given: with a build directory reached
# through a symbolic link it failed, "mapped /real/libluasock.so.0.1, not
# from /link".  Here it gets its libdir through a link.
add_test(NAME embed_symlinked_libdir
  COMMAND sh -c "link=$(mktemp -u /tmp/luasock-link.XXXXXX) && ln -s \"$0\" \"$link\" &&
                 { \"$1\" \"$link\"; status=$?; rm -f \"$link\"; exit $status; }"
          $<TARGET_FILE_DIR:luasock_lib> $<TARGET_FILE:embed>)
set_tests_properties(embed_symlinked_libdir PROPERTIES TIMEOUT 30)

# The installed copy must be compiled with the same sanitizers as the
# library it links (the ASan runtime must come first).  lua5.4, which has
# no sanitizer, can load a sanitized luasock.so only with the runtime
# preloaded (LUA_PRELOAD: LD_PRELOAD for lua5.4 alone).
set(embed_cflags "")
set(asan_runtime "")
if(LUASOCK_SANITIZE)
  set(embed_cflags -fsanitize=address,undefined -fno-omit-frame-pointer)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE asan_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
add_test(NAME embed_installed
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/embed/installed.sh
          ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} ${embed_cflags})
set_tests_properties(embed_installed PROPERTIES TIMEOUT 120
  ENVIRONMENT "CC=${CMAKE_C_COMPILER};LUA_PRELOAD=${asan_runtime}")

# The library's code with bundled modules whose bytecode this Lua rejects
# (embed --foreign): they must load from their source (fallback.c).
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/lua_modules_foreign.c
  COMMAND luasock_embed --foreign ${CMAKE_BINARY_DIR}/lua_modules_foreign.c
          ${CMAKE_SOURCE_DIR}/lua ${LUA_MODULES}
  DEPENDS luasock_embed ${LUA_MODULE_FILES}
  COMMENT "Embedding lua/*.lua with foreign bytecode")
add_executable(fallback ${CMAKE_SOURCE_DIR}/tests/embed/fallback.c
  ${CMAKE_BINARY_DIR}/lua_modules_foreign.c)
target_link_libraries(fallback PRIVATE luasock_objs ${PROGRAM_LUA})
add_test(NAME bytecode_fallback COMMAND fallback)
set_tests_properties(bytecode_fallback PROPERTIES TIMEOUT 30)

# Every allocation of a workload made to fail in turn (allocfail.c).
add_executable(allocfail ${CMAKE_SOURCE_DIR}/tests/embed/allocfail.c)
target_link_libraries(allocfail PRIVATE luasock_lib)
add_test(NAME allocfail
  COMMAND allocfail ${CMAKE_SOURCE_DIR}/tests/embed/allocfail.lua)
set_tests_properties(allocfail PROPERTIES TIMEOUT 300)

# The fault-injection shim (tests/faults), preloaded by faults_spec into
# a luasock running tests/faults/workload.lua.
add_library(faultshim MODULE ${CMAKE_SOURCE_DIR}/tests/faults/faultshim.c)
target_link_libraries(faultshim PRIVATE dl Threads::Threads)

# libFuzzer targets (tests/fuzz), built with clang and run a few seconds
# each; once, in the sanitizer pass, since they are always built with
# ASan and UBSan (tests/fuzz/run.sh tells how to run them for hours).
if(LUASOCK_SANITIZE)
  add_test(NAME fuzz COMMAND sh ${CMAKE_SOURCE_DIR}/tests/fuzz/run.sh ${CMAKE_BINARY_DIR} 5)
  set_tests_properties(fuzz PROPERTIES TIMEOUT 600)
endif()

# The REPL specs start python3 (tests/pty_drive.py) for every terminal
# session, about half a CPU second each: on a loaded machine (two cores,
# a dozen busy processes) they need more than a spec's 120 s.
set_tests_properties(repl_spec repl_tasks_spec PROPERTIES TIMEOUT 300)
# host_spec starts one or two child programs (luasock, lua5.4) for each
# of its forty cases: under ASan on such a machine that takes over 120 s.
set_tests_properties(host_spec PROPERTIES TIMEOUT 300)
# faults_spec starts a child luasock for each case, several with lookups
# slowed by seconds on purpose: under ASan on such a machine it took
# 100 s, and over 120 s at a load of 17.
set_tests_properties(faults_spec PROPERTIES TIMEOUT 300)

# A fresh build with -DBUILD_TESTING=OFF where busted cannot be found.  It
# checks the build files, not the code, so the sanitizer pass skips it.
if(NOT LUASOCK_SANITIZE)
  add_test(NAME build_without_busted
    COMMAND sh ${CMAKE_SOURCE_DIR}/tests/build/without_busted.sh ${CMAKE_SOURCE_DIR})
  set_tests_properties(build_without_busted PROPERTIES TIMEOUT 300)
endif()

# luasock.so in the stock lua5.4: busted itself runs under lua5.4, and
# LUA_CPATH puts the build's module first (and the sanitizer's runtime
# comes first, as above).
find_program(LUA54 lua5.4 REQUIRED)
set(lua54_env "LUA_CPATH=${CMAKE_BINARY_DIR}/lua/?.so\;\;"
  "LUASOCK=$<TARGET_FILE:luasock>" "LUASOCK_BUILD=${CMAKE_BINARY_DIR}")
if(LUASOCK_SANITIZE)
  list(APPEND lua54_env "LD_PRELOAD=${asan_runtime}")
endif()
add_test(NAME lua54_module
  COMMAND ${LUA54} ${BUSTED} --helper=tests/lua54/helpers.lua -o utfTerminal
          tests/lua54/luasock_module_spec.lua
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(lua54_module PROPERTIES TIMEOUT 120 ENVIRONMENT "${lua54_env}")

# The Debian packages, built from debian/ in a temporary copy and run
# unpacked (a few minutes: a whole optimised build and lintian).  Like the
# build without busted, it checks packaging, not code: not in the
# sanitizer pass.  Exit 77: dpkg-buildpackage is missing.
if(NOT LUASOCK_SANITIZE)
  add_test(NAME debian_packages
    COMMAND sh ${CMAKE_SOURCE_DIR}/tests/debian/packages.sh ${CMAKE_SOURCE_DIR})
  set_tests_properties(debian_packages PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77
    ENVIRONMENT "CC=${CMAKE_C_COMPILER}")
endif()
