# tests/tests.cmake - test programs besides the busted specs (included by
# CMakeLists.txt).  The embedding program is built against the build tree
# and run (embed), then again against an installed prefix through
# pkg-config, beside the installed luasock (embed_installed).
add_executable(embed ${CMAKE_SOURCE_DIR}/tests/embed/embed.c)
target_link_libraries(embed PRIVATE luasock_lib)
add_test(NAME embed COMMAND embed $<TARGET_FILE_DIR:luasock_lib>)
set_tests_properties(embed PROPERTIES TIMEOUT 30)

# The installed copy must be compiled with the same sanitizers as the
# library it links (the ASan runtime must come first).
set(embed_cflags "")
if(LUASOCK_SANITIZE)
  set(embed_cflags -fsanitize=address,undefined -fno-omit-frame-pointer)
endif()
add_test(NAME embed_installed
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/embed/installed.sh
          ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} ${embed_cflags})
set_tests_properties(embed_installed PROPERTIES TIMEOUT 120
  ENVIRONMENT "CC=${CMAKE_C_COMPILER}")
