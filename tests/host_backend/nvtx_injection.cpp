// A minimal NVTX injection library for tests: NVTX loads it from NVTX_INJECTION64_PATH and it
// records "domain:<name>", "push:<domain>:<message>" and "pop:<domain>" lines. The test reads them
// back through kvbm_nvtx_test_records (found with dlsym). Works without a GPU or a driver.
#include <nvtx3/nvToolsExt.h>

#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Recorder {
  std::mutex mutex;
  std::deque<std::string> domains;   // stable addresses: handles point here
  std::deque<std::string> strings;   // registered strings
  std::vector<std::string> records;
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

const char* domain_name(nvtxDomainHandle_t domain) {
  return domain == nullptr ? "(default)" : reinterpret_cast<const std::string*>(domain)->c_str();
}

nvtxDomainHandle_t NVTX_API domain_create(const char* name) {
  auto& r = recorder();
  std::lock_guard lock{r.mutex};
  r.domains.emplace_back(name);
  r.records.push_back("domain:" + r.domains.back());
  return reinterpret_cast<nvtxDomainHandle_t>(&r.domains.back());
}

nvtxStringHandle_t NVTX_API register_string(nvtxDomainHandle_t, const char* text) {
  auto& r = recorder();
  std::lock_guard lock{r.mutex};
  r.strings.emplace_back(text);
  return reinterpret_cast<nvtxStringHandle_t>(&r.strings.back());
}

int NVTX_API range_push(nvtxDomainHandle_t domain, const nvtxEventAttributes_t* attributes) {
  std::string message = "(none)";
  if (attributes != nullptr) {
    if (attributes->messageType == NVTX_MESSAGE_TYPE_ASCII) {
      message = attributes->message.ascii;
    } else if (attributes->messageType == NVTX_MESSAGE_TYPE_REGISTERED) {
      message = *reinterpret_cast<const std::string*>(attributes->message.registered);
    }
  }
  auto& r = recorder();
  std::lock_guard lock{r.mutex};
  std::string line = std::string{"push:"} + domain_name(domain) + ":" + message;
  if (attributes != nullptr && attributes->payloadType == NVTX_PAYLOAD_TYPE_UNSIGNED_INT64) {
    line += "#" + std::to_string(attributes->payload.ullValue);
  }
  r.records.push_back(std::move(line));
  return 0;
}

int NVTX_API range_pop(nvtxDomainHandle_t domain) {
  auto& r = recorder();
  std::lock_guard lock{r.mutex};
  r.records.push_back(std::string{"pop:"} + domain_name(domain));
  return 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int InitializeInjectionNvtx2(
    NvtxGetExportTableFunc_t get_export_table) {
  const auto* callbacks =
      static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr) return 0;
  NvtxFunctionTable table = nullptr;
  unsigned int size = 0;
  if (callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &table, &size) == 0) return 0;
  auto set = [&](unsigned int id, NvtxFunctionPointer fn) {
    if (id < size && table[id] != nullptr) *table[id] = fn;
  };
  set(NVTX_CBID_CORE2_DomainCreateA, reinterpret_cast<NvtxFunctionPointer>(&domain_create));
  set(NVTX_CBID_CORE2_DomainRegisterStringA, reinterpret_cast<NvtxFunctionPointer>(&register_string));
  set(NVTX_CBID_CORE2_DomainRangePushEx, reinterpret_cast<NvtxFunctionPointer>(&range_push));
  set(NVTX_CBID_CORE2_DomainRangePop, reinterpret_cast<NvtxFunctionPointer>(&range_pop));
  return 1;
}

/// Copies the records so far into `*out` (a std::vector<std::string>*), then clears them.
__attribute__((visibility("default"))) void kvbm_nvtx_test_records(void* out) {
  auto& r = recorder();
  std::lock_guard lock{r.mutex};
  *static_cast<std::vector<std::string>*>(out) = std::move(r.records);
  r.records.clear();
}

}  // extern "C"
