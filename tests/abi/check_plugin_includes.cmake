# check_plugin_includes.cmake - run with `cmake -P`. Reads a
# compile_commands.json and fails when a source under <SRC_DIR>/plugins/ is
# compiled with an include path that leads into the host ("/host" as a path
# component): plugins see the SDK headers and nothing else.
#
#   -DDB=<compile_commands.json> -DSRC_DIR=<source root>
#   -DEXPECT_PLUGINS=ON   also fail when SRC_DIR/plugins has C sources but the
#                         database lists none of them (a parsing mistake must
#                         not pass silently)
#   -DCOMPAT_SRC=<file> -DCOMPAT_INC=<dir>
#                         also check that <file> is compiled with -I<dir> and
#                         without the SDK's own include directory
cmake_minimum_required(VERSION 3.25)

if(NOT EXISTS "${DB}")
  message(FATAL_ERROR "${DB} does not exist (configure with CMAKE_EXPORT_COMPILE_COMMANDS)")
endif()
file(READ "${DB}" db)
string(JSON n LENGTH "${db}")
set(checked 0)
set(bad "")
set(compat_seen OFF)

# The include directories of one compile command, one list element each.
function(includes_of cmd out)
  string(REGEX MATCHALL "(^| )(-I *|-isystem +|-iquote +|-idirafter +)(\"[^\"]*\"|[^ ]+)" flags "${cmd}")
  set(dirs "")
  foreach(f ${flags})
    string(REGEX REPLACE "^ ?(-I *|-isystem +|-iquote +|-idirafter +)" "" d "${f}")
    string(REPLACE "\"" "" d "${d}")
    list(APPEND dirs "${d}")
  endforeach()
  set(${out} "${dirs}" PARENT_SCOPE)
endfunction()

math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  if(n EQUAL 0)
    break()
  endif()
  string(JSON file GET "${db}" ${i} file)
  string(JSON cmd ERROR_VARIABLE no_cmd GET "${db}" ${i} command)
  if(no_cmd)
    # The "arguments" form: join the array into one command line.
    string(JSON nargs LENGTH "${db}" ${i} arguments)
    set(cmd "")
    math(EXPR alast "${nargs} - 1")
    foreach(a RANGE ${alast})
      string(JSON arg GET "${db}" ${i} arguments ${a})
      string(APPEND cmd " ${arg}")
    endforeach()
  endif()
  includes_of("${cmd}" dirs)

  string(FIND "${file}" "${SRC_DIR}/plugins/" at)
  if(at EQUAL 0)
    math(EXPR checked "${checked} + 1")
    foreach(d ${dirs})
      if(d MATCHES "/host(/|$)")
        list(APPEND bad "${file}: include path ${d}")
      endif()
    endforeach()
  endif()

  if(COMPAT_SRC AND file STREQUAL COMPAT_SRC)
    set(compat_seen ON)
    if(NOT COMPAT_INC IN_LIST dirs)
      list(APPEND bad "${file}: not compiled with -I${COMPAT_INC}")
    endif()
    foreach(d ${dirs})
      if(d MATCHES "sdk/include$" OR d MATCHES "/host(/|$)")
        list(APPEND bad "${file}: sees ${d} (must see only the frozen header)")
      endif()
    endforeach()
  endif()
endforeach()

if(EXPECT_PLUGINS)
  file(GLOB_RECURSE plugin_sources "${SRC_DIR}/plugins/*.c")
  if(plugin_sources AND checked EQUAL 0)
    list(APPEND bad "${DB} lists none of the sources under ${SRC_DIR}/plugins")
  endif()
endif()
if(COMPAT_SRC AND NOT compat_seen)
  list(APPEND bad "${DB} does not list ${COMPAT_SRC}")
endif()

if(bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "plugin include check failed:\n  ${text}")
endif()
message(STATUS "plugin include check: ${checked} plugin source(s), no host include path")
