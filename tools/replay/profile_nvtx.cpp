// tools/replay/profile_nvtx.cpp — the NVTX side of --profile: the static injection NVTX calls at
// its first use, the four callbacks it patches in, and the per-thread range buffers.
// Compiled with NVTX_NO_IMPL (types only) so that it can define the strong
// InitializeInjectionNvtx2_fnptr that overrides NVTX's weak null default in every other file.
#if defined(KVBM_NVTX_ENABLED)
#define NVTX_NO_IMPL
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "replay/profile_collector.hpp"

namespace kvbm::replay {

namespace detail {
namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

struct OpenRange {
  const std::string* name;
  std::uint64_t start_ns;
  bool recorded;  // opened while a session was recording
  bool has_count;
  std::uint64_t count;
};

struct ClosedRange {
  const std::string* name;
  std::uint64_t start_ns;
  std::uint64_t end_ns;
  bool has_count;
  std::uint64_t count;
};

// One per thread that ever opened a kvbm range; owned by the collector so a thread's records
// outlive it. `stack` is touched only by its thread; `closed` also by take_events.
struct ThreadBuffer {
  std::uint32_t id = 0;
  std::vector<OpenRange> stack;
  std::mutex mutex;
  std::vector<ClosedRange> closed;
};

enum InitState : int { kNotInitialised = 0, kAttached = 1, kDeclined = 2 };

struct Collector {
  std::atomic<int> init_state{kNotInitialised};
  std::atomic<bool> want_attach{false};  // a session is starting: accept NVTX's init
  std::atomic<bool> recording{false};
  std::atomic<bool> session_exists{false};
  std::atomic<std::uint64_t> origin_ns{0};

  std::mutex mutex;  // guards everything below
  std::deque<std::string> domains;  // stable addresses: domain handles point here
  std::deque<std::string> names;    // stable addresses: string handles and interned names
  std::unordered_map<std::string, const std::string*> interned;
  std::vector<std::unique_ptr<ThreadBuffer>> threads;

  const std::string* intern(std::string_view text) {
    std::lock_guard lock{mutex};
    auto it = interned.find(std::string{text});
    if (it != interned.end()) return it->second;
    names.emplace_back(text);
    interned.emplace(names.back(), &names.back());
    return &names.back();
  }
};

// Never destroyed: NVTX may call in from other objects' destructors at exit.
Collector& collector() {
  static Collector& c = *new Collector;
  return c;
}

thread_local ThreadBuffer* tl_buffer = nullptr;

ThreadBuffer& thread_buffer() {
  if (tl_buffer != nullptr) return *tl_buffer;
  auto& c = collector();
  std::lock_guard lock{c.mutex};
  c.threads.push_back(std::make_unique<ThreadBuffer>());
  c.threads.back()->id = static_cast<std::uint32_t>(c.threads.size());
  tl_buffer = c.threads.back().get();
  return *tl_buffer;
}

bool is_kvbm(nvtxDomainHandle_t domain) {
  return domain != nullptr && *reinterpret_cast<const std::string*>(domain) == "kvbm";
}

nvtxDomainHandle_t NVTX_API domain_create(const char* name) {
  auto& c = collector();
  std::lock_guard lock{c.mutex};
  c.domains.emplace_back(name == nullptr ? "" : name);
  return reinterpret_cast<nvtxDomainHandle_t>(&c.domains.back());
}

nvtxStringHandle_t NVTX_API register_string(nvtxDomainHandle_t, const char* text) {
  const std::string* interned = collector().intern(text == nullptr ? "" : text);
  return reinterpret_cast<nvtxStringHandle_t>(const_cast<std::string*>(interned));
}

int NVTX_API range_push(nvtxDomainHandle_t domain, const nvtxEventAttributes_t* attributes) {
  if (!is_kvbm(domain)) return 0;
  auto& c = collector();
  OpenRange open{nullptr, now_ns(), c.recording.load(std::memory_order_relaxed), false, 0};
  if (attributes != nullptr) {
    if (attributes->messageType == NVTX_MESSAGE_TYPE_REGISTERED) {
      open.name = reinterpret_cast<const std::string*>(attributes->message.registered);
    } else if (attributes->messageType == NVTX_MESSAGE_TYPE_ASCII &&
               attributes->message.ascii != nullptr) {
      open.name = c.intern(attributes->message.ascii);
    }
    if (attributes->payloadType == NVTX_PAYLOAD_TYPE_UNSIGNED_INT64) {
      open.has_count = true;
      open.count = attributes->payload.ullValue;
    }
  }
  if (open.name == nullptr) open.name = c.intern("(unnamed)");
  ThreadBuffer& buffer = thread_buffer();
  buffer.stack.push_back(open);
  return static_cast<int>(buffer.stack.size()) - 1;
}

int NVTX_API range_pop(nvtxDomainHandle_t domain) {
  if (!is_kvbm(domain)) return 0;
  const std::uint64_t end = now_ns();
  ThreadBuffer& buffer = thread_buffer();
  if (buffer.stack.empty()) return -1;
  const OpenRange open = buffer.stack.back();
  buffer.stack.pop_back();
  if (open.recorded && collector().recording.load(std::memory_order_relaxed)) {
    std::lock_guard lock{buffer.mutex};
    buffer.closed.push_back({open.name, open.start_ns, end, open.has_count, open.count});
  }
  return static_cast<int>(buffer.stack.size());
}

int NVTX_API initialize_injection(NvtxGetExportTableFunc_t get_export_table) {
  auto& c = collector();
  // Declining leaves NVTX's no-ops in place for the rest of the process: zero cost when off.
  if (!c.want_attach.load()) {
    c.init_state.store(kDeclined);
    return 0;
  }
  const auto* callbacks =
      static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr) {
    c.init_state.store(kDeclined);
    return 0;
  }
  NvtxFunctionTable table = nullptr;
  unsigned int size = 0;
  if (callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &table, &size) == 0) {
    c.init_state.store(kDeclined);
    return 0;
  }
  auto set = [&](unsigned int id, NvtxFunctionPointer fn) {
    if (id < size && table[id] != nullptr) *table[id] = fn;
  };
  set(NVTX_CBID_CORE2_DomainCreateA, reinterpret_cast<NvtxFunctionPointer>(&domain_create));
  set(NVTX_CBID_CORE2_DomainRegisterStringA,
      reinterpret_cast<NvtxFunctionPointer>(&register_string));
  set(NVTX_CBID_CORE2_DomainRangePushEx, reinterpret_cast<NvtxFunctionPointer>(&range_push));
  set(NVTX_CBID_CORE2_DomainRangePop, reinterpret_cast<NvtxFunctionPointer>(&range_pop));
  c.init_state.store(kAttached);
  return 1;
}

}  // namespace

void collector_set_want_attach(bool want) { collector().want_attach.store(want); }

CollectorState collector_state() {
  switch (collector().init_state.load()) {
    case kAttached: return CollectorState::Attached;
    case kDeclined: return CollectorState::Declined;
    default: return CollectorState::NotInitialised;
  }
}

bool collector_claim_session() { return !collector().session_exists.exchange(true); }

void collector_release_session() {
  auto& c = collector();
  c.recording.store(false);
  c.session_exists.store(false);
}

void collector_start_recording() {
  auto& c = collector();
  c.origin_ns.store(now_ns());
  c.recording.store(true);
}

std::vector<ProfileEvent> collector_take_events() {
  auto& c = collector();
  const std::uint64_t origin = c.origin_ns.load();
  std::vector<ProfileEvent> events;
  std::lock_guard lock{c.mutex};
  for (const auto& buffer : c.threads) {
    std::vector<ClosedRange> closed;
    {
      std::lock_guard buffer_lock{buffer->mutex};
      closed.swap(buffer->closed);
    }
    for (const auto& range : closed) {
      events.push_back({*range.name, buffer->id, range.start_ns - origin,
                        range.end_ns - range.start_ns, range.has_count, range.count});
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const ProfileEvent& a, const ProfileEvent& b) {
                     return a.start_ns < b.start_ns;
                   });
  return events;
}

}  // namespace detail

}  // namespace kvbm::replay

// The static injection NVTX looks for when no dynamic tool is named (see profile.hpp). A strong
// definition here overrides NVTX's weak null default in every other translation unit.
extern "C" {
__attribute__((visibility("default"))) NvtxInitializeInjectionNvtxFunc_t
    InitializeInjectionNvtx2_fnptr = &kvbm::replay::detail::initialize_injection;
}


#endif  // KVBM_NVTX_ENABLED
