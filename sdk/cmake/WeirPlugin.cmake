# weir_add_plugin(<name> <source>... [LIBS <lib>...])
#
# Builds a Weir operator plugin <name>.so from the given sources, the way
# every plugin should be built: a MODULE library that sees only the SDK
# headers, exports nothing but weir_plugin_entry (-fvisibility=hidden) and
# links msgpack-c for weir/msgpack.h. Extra libraries go after LIBS.
#
# In the Weir tree the result lands in the build's plugins/ folder; outside,
# in the caller's binary dir (set WEIR_PLUGIN_OUTPUT_DIR to change it). With
# WEIR_PLUGIN_INSTALL_DESTINATION set, `cmake --install` puts it there (the
# Weir tree sets it to <prefix>/lib/weir/plugins for its bundled plugins; an
# outside project may set it to ${WEIR_PLUGIN_DIR}).
include_guard(GLOBAL)
find_package(PkgConfig REQUIRED)
if(NOT TARGET weir_plugin_msgpack)
  pkg_check_modules(WEIR_PLUGIN_MSGPACK REQUIRED IMPORTED_TARGET msgpack)
  add_library(weir_plugin_msgpack INTERFACE)
  target_link_libraries(weir_plugin_msgpack INTERFACE PkgConfig::WEIR_PLUGIN_MSGPACK)
endif()

function(weir_add_plugin name)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_library(${name} MODULE ${ARG_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    C_STANDARD 11)
  if(DEFINED WEIR_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${WEIR_PLUGIN_OUTPUT_DIR})
  endif()
  target_include_directories(${name} PRIVATE ${WEIR_SDK_INCLUDE_DIR})
  if(WEIR_PLUGIN_INSTALL_DESTINATION)
    install(TARGETS ${name} LIBRARY DESTINATION ${WEIR_PLUGIN_INSTALL_DESTINATION})
  endif()
  target_link_libraries(${name} PRIVATE weir_plugin_msgpack ${ARG_LIBS})
  # An unresolved symbol is a link error, not a surprise at dlopen time.
  # (Not with clang's sanitizers: their runtime is not linked into modules.)
  if(NOT (WEIR_SANITIZE AND CMAKE_C_COMPILER_ID MATCHES "Clang"))
    target_link_options(${name} PRIVATE -Wl,--no-undefined)
  endif()
endfunction()
