# Finds the project's dependencies through pkg-config and turns each into an
# imported target weir::<name>. A missing one stops configuration with the
# name of the Debian package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

function(weir_require_pkg name module debian_pkg)
  pkg_check_modules(WEIRDEP_${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT WEIRDEP_${name}_FOUND)
    message(FATAL_ERROR
      "${name} (pkg-config module '${module}') not found: "
      "install the Debian package ${debian_pkg} (apt-get install ${debian_pkg})")
  endif()
  add_library(weir::${name} ALIAS PkgConfig::WEIRDEP_${name})
endfunction()

weir_require_pkg(rocksdb rocksdb librocksdb-dev)
weir_require_pkg(zmq libzmq libzmq3-dev)
weir_require_pkg(msgpack msgpack libmsgpack-dev)
weir_require_pkg(yaml yaml-0.1 libyaml-dev)
weir_require_pkg(xxhash libxxhash libxxhash-dev)
weir_require_pkg(jansson jansson libjansson-dev)
weir_require_pkg(microhttpd libmicrohttpd libmicrohttpd-dev)
weir_require_pkg(rdkafka rdkafka librdkafka-dev)
if(WEIR_BUILD_TESTS)
  weir_require_pkg(cmocka cmocka libcmocka-dev)
endif()
find_package(Threads REQUIRED)
