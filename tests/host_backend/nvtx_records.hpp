// Reads what the recording NVTX injection library (nvtx_injection.cpp) saw, for the NVTX tests.
// ctest points NVTX_INJECTION64_PATH at it; NVTX loads it on the first range.
#pragma once

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace kvbm::test {

/// The records so far ("domain:NAME", "push:DOMAIN:NAME#PAYLOAD", "pop:DOMAIN"); reading clears
/// them. Empty when the library is not loaded.
inline std::vector<std::string> take_nvtx_records() {
  const char* path = std::getenv("NVTX_INJECTION64_PATH");
  if (path == nullptr) return {};
  void* library = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (library == nullptr) return {};
  auto* read = reinterpret_cast<void (*)(void*)>(dlsym(library, "kvbm_nvtx_test_records"));
  std::vector<std::string> records;
  if (read != nullptr) read(&records);
  dlclose(library);
  return records;
}

inline bool contains_record(const std::vector<std::string>& records, const std::string& line) {
  return std::find(records.begin(), records.end(), line) != records.end();
}

}  // namespace kvbm::test
