// Name parsing of the eviction backends (the names themselves live in
// kvbm/eviction.hpp).
#include <string>

#include "kvbm/errors.hpp"
#include "kvbm/eviction.hpp"

namespace kvbm {

EvictionBackend parse_eviction_backend(std::string_view name) {
  for (const EvictionBackend backend : all_eviction_backends()) {
    if (to_string(backend) == name) return backend;
  }
  std::string valid;
  for (const EvictionBackend backend : all_eviction_backends()) {
    if (!valid.empty()) valid += ", ";
    valid += to_string(backend);
  }
  throw ConfigError("unknown eviction backend '" + std::string(name) + "' (valid: " + valid + ")");
}

}  // namespace kvbm
