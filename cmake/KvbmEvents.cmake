# kvbm::events — the vLLM-compatible ZeroMQ publisher of KV events (src/events/). Optional: built
# when libzmq (pkg-config), cppzmq's zmq.hpp and msgpack-cxx's msgpack.hpp are all found
# (scripts/install-deps.sh installs them: libzmq3-dev cppzmq-dev libmsgpack-cxx-dev); otherwise
# skipped with a status message. kvbm::core never depends on it.
set(KVBM_HAS_EVENTS OFF)
pkg_check_modules(ZMQ QUIET IMPORTED_TARGET libzmq)
find_path(KVBM_CPPZMQ_INCLUDE_DIR NAMES zmq.hpp)
find_path(KVBM_MSGPACK_INCLUDE_DIR NAMES msgpack.hpp)
if(ZMQ_FOUND AND KVBM_CPPZMQ_INCLUDE_DIR AND KVBM_MSGPACK_INCLUDE_DIR)
  set(KVBM_HAS_EVENTS ON)
  kvbm_add_layer(events events)
  # msgpack-cxx is used header-only without Boost; both headers stay private to the target.
  target_compile_definitions(kvbm_events PRIVATE MSGPACK_NO_BOOST)
  target_include_directories(kvbm_events SYSTEM PRIVATE
    $<BUILD_INTERFACE:${KVBM_CPPZMQ_INCLUDE_DIR}> $<BUILD_INTERFACE:${KVBM_MSGPACK_INCLUDE_DIR}>)
  target_link_libraries(kvbm_events PUBLIC kvbm_core Threads::Threads PkgConfig::ZMQ)
  target_link_libraries(kvbm_events PRIVATE absl::flat_hash_map)
  kvbm_layering_check(kvbm_events)
  message(STATUS "kvbm: KV events publisher (kvbm::events) ON")
else()
  message(STATUS "kvbm: KV events publisher (kvbm::events) OFF: needs libzmq, cppzmq and "
                 "msgpack-cxx (libzmq3-dev cppzmq-dev libmsgpack-cxx-dev)")
endif()
