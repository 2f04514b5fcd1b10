// python/src/sequences.cpp — HashKeys, RequestSequence and SchedulableSequence (the
// scheduler-facing API of kvbm/request_sequence.hpp and kvbm/schedulable_sequence.hpp).
//
// A C++ sequence is a template over its tier; a Python sequence picks its tier at construction
// (`tier=`, "G1" by default) and holds a variant over the three. A call with a manager of another
// tier raises ForeignBlock before anything runs, as the C++ calls do for another manager.
// Calls that take or give back blocks run with the GIL released. While one runs, the sequence is
// marked busy and any other use of it (another thread, or its delegate calling back into it)
// raises RuntimeError: a sequence is used by one thread at a time, as in C++.
// The delegate is a Python callable run on the calling thread with the GIL taken; an exception it
// raises goes to sys.unraisablehook (the transition has taken effect and is not undone).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "common.hpp"

namespace kvbm::python {
namespace {

struct PyRequestSequence {
  ByTier<RequestSequence> seq;
  bool busy = false;
};
struct PySchedulableSequence {
  ByTier<SchedulableSequence> seq;
  bool busy = false;
};

template <class S>
struct SeqTier;
template <class Tier>
struct SeqTier<RequestSequence<Tier>> {
  using type = Tier;
};
template <class Tier>
struct SeqTier<SchedulableSequence<Tier>> {
  using type = Tier;
};

const char* tier_at(std::size_t variant_index) noexcept {
  static constexpr const char* names[] = {"released", "G1", "G2", "G3"};
  return names[variant_index < 4 ? variant_index : 0];
}

/// Marks a sequence busy for one call; cleared with the GIL held (declared before the release).
struct BusyGuard {
  bool& flag;
  explicit BusyGuard(bool& f) : flag{f} { flag = true; }
  ~BusyGuard() { flag = false; }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;
};

template <class W>
void check_usable(const W& self, const char* operation) {
  if (self.busy) {
    throw nb::builtin_exception(
        nb::exception_type::runtime_error,
        (std::string(operation) + ": the sequence is in use by another call (one thread at a "
                                  "time; a delegate must not call back into its sequence)")
            .c_str());
  }
  if (self.seq.index() == 0) {
    throw InvalidHandle(std::string(operation) + ": the sequence was closed");
  }
}

/// Runs f(seq) with the GIL held (accessors, calls that touch no pool).
template <class W, class F>
auto with_seq(W& self, const char* operation, F&& f) {
  check_usable(self, operation);
  return visit_live(self.seq, operation, std::forward<F>(f));
}

/// Runs f(seq) with the GIL released (calls that give blocks back).
template <class W, class F>
auto released(W& self, const char* operation, F&& f) {
  check_usable(self, operation);
  return visit_live(self.seq, operation, [&](auto& seq) {
    BusyGuard busy(self.busy);
    nb::gil_scoped_release release;
    return f(seq);
  });
}

/// Runs f(seq, manager) with the GIL released; the manager must be of the sequence's tier.
template <class W, class F>
auto on_manager(W& self, PyBlockManager& pm, const char* operation, F&& f) {
  check_usable(self, operation);
  if (self.seq.index() != pm.manager.index() + 1) {
    throw ForeignBlock(std::string(operation) + ": the sequence is for tier " +
                       tier_at(self.seq.index()) + ", the manager is " +
                       tier_at(pm.manager.index() + 1));
  }
  return visit_live(self.seq, operation, [&](auto& seq) {
    using Tier = typename SeqTier<std::decay_t<decltype(seq)>>::type;
    auto& manager = std::get<BlockManager<Tier>>(pm.manager);
    BusyGuard busy(self.busy);
    nb::gil_scoped_release release;
    return f(seq, manager);
  });
}

/// Destroys the C++ sequence (its blocks go back, last first) with the GIL released.
template <class W>
void close(W& self) {
  if (self.busy) check_usable(self, "close");
  auto held = std::move(self.seq);
  self.seq = std::monostate{};
  nb::gil_scoped_release release;
  held = std::monostate{};
}

/// The Python callable behind a SequenceDelegate. Copies of the delegate share it; the last one
/// drops the reference with the GIL taken (it may go on a GIL-released path).
struct PyCallback {
  nb::object fn;
  PyCallback() = default;
  PyCallback(const PyCallback&) = delete;
  PyCallback& operator=(const PyCallback&) = delete;
  ~PyCallback() {
    nb::gil_scoped_acquire gil;
    fn.reset();
  }
};

SequenceDelegate make_delegate(nb::object fn) {
  if (fn.is_none()) return {};
  if (!PyCallable_Check(fn.ptr())) throw nb::type_error("delegate must be callable or None");
  auto cb = std::make_shared<PyCallback>();
  cb->fn = std::move(fn);
  return [cb](const SequenceEvent& event) {
    nb::gil_scoped_acquire gil;
    try {
      cb->fn(event);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable(cb->fn);
    }
  };
}

std::uint32_t checked_block_size(std::int64_t block_size) {
  if (block_size <= 0 || block_size > 0xFFFFFFFFll) {
    throw ConfigError("block_size must be a power of two, got " + std::to_string(block_size));
  }
  return static_cast<std::uint32_t>(block_size);
}

template <template <class> class Seq, class Make>
ByTier<Seq> by_tier(const std::string& tier, Make&& make) {
  if (tier == "G1") return make.template operator()<G1>();
  if (tier == "G2") return make.template operator()<G2>();
  if (tier == "G3") return make.template operator()<G3>();
  throw ConfigError("tier must be \"G1\", \"G2\" or \"G3\", got \"" + tier + "\"");
}

template <class T>
std::vector<T> to_vector(std::span<const T> s) {
  return {s.begin(), s.end()};
}

/// Read-only accessors shared by both sequence classes.
template <class W>
void add_common(nb::class_<W>& cls, const char* name) {
  using namespace nb::literals;
  cls.def_prop_ro(
         "tier", [](const W& self) { return std::string(tier_at(self.seq.index())); },
         "The tier (\"G1\", \"G2\", \"G3\") of the managers this sequence works with; "
         "\"released\" after close().")
      .def_prop_ro("valid", [](const W& self) { return self.seq.index() != 0; },
                   "False once the sequence was closed.")
      .def(
          "close", [](W& self) { close(self); },
          "Drops the sequence now: every block it holds goes back, last block first "
          "(idempotent); later use raises InvalidHandle.")
      .def("__enter__", [](W& self) -> W& { return self; }, nb::rv_policy::reference)
      .def(
          "__exit__", [](W& self, nb::handle, nb::handle, nb::handle) { close(self); },
          nb::arg("exc_type").none(), nb::arg("exc").none(), nb::arg("tb").none(),
          "Closes the sequence (the `with` block's end).")
      .def_prop_ro(
          "num_input_tokens",
          [](W& s) { return with_seq(s, "num_input_tokens", [](auto& q) { return q.num_input_tokens(); }); },
          "Prompt tokens.")
      .def_prop_ro(
          "total_tokens",
          [](W& s) { return with_seq(s, "total_tokens", [](auto& q) { return q.total_tokens(); }); },
          "Tokens held: prompt plus generated.")
      .def_prop_ro(
          "generated_tokens",
          [](W& s) { return with_seq(s, "generated_tokens", [](auto& q) { return q.generated_tokens(); }); },
          "Tokens generated so far.")
      .def_prop_ro(
          "max_output_tokens",
          [](W& s) { return with_seq(s, "max_output_tokens", [](auto& q) { return q.max_output_tokens(); }); },
          "The most tokens the request may generate.")
      .def_prop_ro(
          "remaining_tokens",
          [](W& s) { return with_seq(s, "remaining_tokens", [](auto& q) { return q.remaining_tokens(); }); },
          "max_output_tokens - generated_tokens.")
      .def_prop_ro(
          "num_blocks",
          [](W& s) { return with_seq(s, "num_blocks", [](auto& q) { return q.num_blocks(); }); },
          "Full token blocks (each has a sequence hash).")
      .def_prop_ro(
          "assigned_blocks",
          [](W& s) { return with_seq(s, "assigned_blocks", [](auto& q) { return q.assigned_blocks(); }); },
          "Registered blocks held (matchable by other requests).")
      .def_prop_ro(
          "staged_blocks",
          [](W& s) { return with_seq(s, "staged_blocks", [](auto& q) { return q.staged_blocks(); }); },
          "Staged (complete, not yet registered) blocks held.")
      .def_prop_ro(
          "unassigned_blocks",
          [](W& s) { return with_seq(s, "unassigned_blocks", [](auto& q) { return q.unassigned_blocks(); }); },
          "Fresh (mutable) blocks held.")
      .def_prop_ro(
          "num_held",
          [](W& s) { return with_seq(s, "num_held", [](auto& q) { return q.num_held(); }); },
          "Blocks held: the length of page_indices().")
      .def_prop_ro(
          "prefix_matched_blocks",
          [](W& s) { return with_seq(s, "prefix_matched_blocks", [](auto& q) { return q.prefix_matched_blocks(); }); },
          "Blocks the last prefix match (or reacquire) adopted from the cache.")
      .def_prop_ro(
          "new_tokens_for_prefill",
          [](W& s) { return with_seq(s, "new_tokens_for_prefill", [](auto& q) { return q.new_tokens_for_prefill(); }); },
          "Tokens not covered by the cache hit (what prefill must compute).")
      .def_prop_ro(
          "block_size",
          [](W& s) { return with_seq(s, "block_size", [](auto& q) { return q.block_size(); }); },
          "Tokens per block (a power of two, equal to the manager's).")
      .def_prop_ro(
          "is_complete",
          [](W& s) { return with_seq(s, "is_complete", [](auto& q) { return q.is_complete(); }); },
          "True once max_output_tokens were generated.")
      .def_prop_ro(
          "hash_keys",
          [](W& s) { return with_seq(s, "hash_keys", [](auto& q) { return HashKeys(q.hash_keys()); }); },
          "A copy of the sequence's HashKeys.")
      .def(
          "tokens",
          [](W& s) { return with_seq(s, "tokens", [](auto& q) { return to_vector(q.tokens()); }); },
          "Every token held (prompt, then generated), as a new list.")
      .def(
          "sequence_hashes",
          [](W& s) {
            return with_seq(s, "sequence_hashes", [](auto& q) { return to_vector(q.sequence_hashes()); });
          },
          "Sequence hashes of the full token blocks, position 0 first.")
      .def(
          "page_indices",
          [](W& s) { return with_seq(s, "page_indices", [](auto& q) { return q.page_indices(); }); },
          "The row a device block table needs: the held blocks' ids in token order "
          "(re-read it after each registration: under duplication=\"reject\" a block may be "
          "answered with the existing primary).")
      .def("__repr__", [name](W& s) {
        if (s.seq.index() == 0) return std::string(name) + "(closed)";
        if (s.busy) return std::string(name) + "(busy)";
        return visit_live(s.seq, name, [&](auto& q) {
          return std::string(name) + "(tier=" + tier_at(s.seq.index()) +
                 ", total_tokens=" + std::to_string(q.total_tokens()) +
                 ", num_held=" + std::to_string(q.num_held()) + ")";
        });
      });
}


}  // namespace

void bind_sequences(nb::module_& m) {
  using namespace nb::literals;

  // ---- vocabulary ----
  nb::enum_<SequenceStateKind>(m, "SequenceStateKind",
                               "Where a SchedulableSequence is in its two-phase protocol.")
      .value("Idle", SequenceStateKind::Idle, "Nothing scheduled.")
      .value("PrefillScheduled", SequenceStateKind::PrefillScheduled,
             "A prefill chunk is scheduled (apply_prefill or revert_schedule next).")
      .value("DecodeScheduled", SequenceStateKind::DecodeScheduled,
             "A decode step is scheduled (apply_decode or revert_schedule next).")
      .value("SpeculativeScheduled", SequenceStateKind::SpeculativeScheduled,
             "A speculative step is scheduled (apply_speculative or revert_schedule next).");

  nb::enum_<DecodeOutcome>(m, "DecodeOutcome",
                           "What apply_decode / apply_speculative did.")
      .value("Continue", DecodeOutcome::Continue, "No block completed; output remains.")
      .value("BlockCompleted", DecodeOutcome::BlockCompleted,
             "A block's KV became complete and the block was registered.")
      .value("MaxLength", DecodeOutcome::MaxLength, "max_output_tokens reached.")
      .value("BlockCompletedAndMaxLength", DecodeOutcome::BlockCompletedAndMaxLength,
             "Both: a block was registered and max_output_tokens reached.");

  nb::enum_<SequenceEventKind>(m, "SequenceEventKind", "The transition a SequenceEvent reports.")
      .value("Created", SequenceEventKind::Created, "The sequence was built.")
      .value("PrefixMatched", SequenceEventKind::PrefixMatched, "match_and_add_prefix ran.")
      .value("PrefillScheduled", SequenceEventKind::PrefillScheduled, "schedule_prefill ran.")
      .value("PrefillApplied", SequenceEventKind::PrefillApplied, "apply_prefill ran.")
      .value("DecodeScheduled", SequenceEventKind::DecodeScheduled, "schedule_decode ran.")
      .value("DecodeApplied", SequenceEventKind::DecodeApplied, "apply_decode ran.")
      .value("SpeculativeScheduled", SequenceEventKind::SpeculativeScheduled,
             "schedule_speculative ran.")
      .value("SpeculativeApplied", SequenceEventKind::SpeculativeApplied,
             "apply_speculative ran.")
      .value("ScheduleReverted", SequenceEventKind::ScheduleReverted, "revert_schedule ran.")
      .value("UnassignedDropped", SequenceEventKind::UnassignedDropped,
             "drop_unassigned released blocks.")
      .value("Released", SequenceEventKind::Released, "release ran (preemption).")
      .value("Reacquired", SequenceEventKind::Reacquired, "reacquire ran (see `success`).");

  nb::enum_<ScheduleErrorKind>(m, "ScheduleErrorKind", "Why a schedule_* call was refused.")
      .value("NotIdle", ScheduleErrorKind::NotIdle,
             "A schedule or match while another operation is scheduled.")
      .value("PrefillOverrun", ScheduleErrorKind::PrefillOverrun,
             "The chunk would go past the tokens to prefill.")
      .value("PrefillComplete", ScheduleErrorKind::PrefillComplete,
             "schedule_prefill with nothing left to prefill.")
      .value("PrefillNotComplete", ScheduleErrorKind::PrefillNotComplete,
             "Decode or speculative before prefill finished.")
      .value("AllocationFailed", ScheduleErrorKind::AllocationFailed,
             "The manager could not supply the blocks (`needed`); nothing was taken.")
      .value("GenerationComplete", ScheduleErrorKind::GenerationComplete,
             "max_output_tokens already generated.")
      .value("WrongDanglingCount", ScheduleErrorKind::WrongDanglingCount,
             "Decode or speculative need exactly one token whose KV is not computed.");

  nb::enum_<ApplyErrorKind>(m, "ApplyErrorKind",
                            "Why an apply_*, revert, release, reacquire or append was refused.")
      .value("WrongState", ApplyErrorKind::WrongState,
             "The operation is not valid in the current state.")
      .value("TokenOnNonFinalChunk", ApplyErrorKind::TokenOnNonFinalChunk,
             "apply_prefill got a token on a chunk that does not end prefill.")
      .value("MissingTokenOnFinalChunk", ApplyErrorKind::MissingTokenOnFinalChunk,
             "apply_prefill got no token on the chunk that ends prefill.")
      .value("AcceptedExceedsScheduled", ApplyErrorKind::AcceptedExceedsScheduled,
             "apply_speculative accepted more tokens than drafts scheduled.")
      .value("AppendExceedsRemaining", ApplyErrorKind::AppendExceedsRemaining,
             "Appending would go past max_output_tokens.");

  nb::class_<SequenceState>(
      m, "SequenceState",
      "A SchedulableSequence's state: `kind`, `num_tokens` (the scheduled chunk, or the drafts), "
      "`blocks_allocated` (what the schedule call allocated). Both 0 when Idle.")
      .def(nb::init<>(), "The Idle state (for comparisons).")
      .def_ro("kind", &SequenceState::kind, "The SequenceStateKind.")
      .def_ro("num_tokens", &SequenceState::num_tokens,
              "Prefill: the chunk; speculative: the drafts; otherwise 0.")
      .def_ro("blocks_allocated", &SequenceState::blocks_allocated,
              "Blocks the schedule call allocated (what revert_schedule gives back).")
      .def(
          "__eq__",
          [](const SequenceState& a, nb::handle b) -> nb::object {
            if (!nb::isinstance<SequenceState>(b)) return nb::borrow(Py_NotImplemented);
            return nb::bool_(a == nb::cast<const SequenceState&>(b));
          },
          nb::sig("def __eq__(self, arg: object, /) -> bool"))
      .def("__repr__", [](const SequenceState& s) {
        return "SequenceState(kind=" + std::string(to_string(s.kind)) +
               ", num_tokens=" + std::to_string(s.num_tokens) +
               ", blocks_allocated=" + std::to_string(s.blocks_allocated) + ")";
      });

  nb::class_<SequenceEvent>(
      m, "SequenceEvent",
      "One transition of a SchedulableSequence, passed to its delegate. Fields that do not apply "
      "to `kind` are zero / empty / None.")
      .def_ro("kind", &SequenceEvent::kind, "The SequenceEventKind.")
      .def_ro("num_tokens", &SequenceEvent::num_tokens,
              "Created: prompt tokens; Prefill*: the chunk; SpeculativeScheduled: drafts; "
              "SpeculativeApplied: tokens accepted.")
      .def_ro("blocks_allocated", &SequenceEvent::blocks_allocated, "*Scheduled, Reacquired.")
      .def_ro("blocks_registered", &SequenceEvent::blocks_registered,
              "*Applied (Reacquired: always 0, the KV must be recomputed).")
      .def_ro("blocks_released", &SequenceEvent::blocks_released,
              "SpeculativeApplied, ScheduleReverted, UnassignedDropped, Released.")
      .def_ro("blocks_matched", &SequenceEvent::blocks_matched, "PrefixMatched, Reacquired.")
      .def_ro("token", &SequenceEvent::token,
              "PrefillApplied (final chunk) and DecodeApplied: the token; otherwise None.")
      .def_ro("success", &SequenceEvent::success, "Reacquired: whether it succeeded.")
      .def_ro("evicted", &SequenceEvent::evicted,
              "Cached blocks the allocation of a *Scheduled or Reacquired event evicted, in "
              "eviction order (what a tiered cache offloads).")
      .def("__repr__", [](const SequenceEvent& e) {
        return "SequenceEvent(kind=" + std::string(to_string(e.kind)) + ")";
      });

  // ---- hash keys ----
  nb::class_<MultimodalItem>(
      m, "MultimodalItem",
      "One multimodal item spliced into the prompt as placeholder tokens: `hash` identifies its "
      "content; it covers prompt tokens [offset, offset + length).")
      .def(
          "__init__",
          [](MultimodalItem* self, std::uint64_t hash, std::size_t offset, std::size_t length) {
            new (self) MultimodalItem{hash, offset, length};
          },
          "hash"_a, "offset"_a, "length"_a, "An item (a zero length is refused when added).")
      .def_rw("hash", &MultimodalItem::hash, "The content hash (64-bit).")
      .def_rw("offset", &MultimodalItem::offset, "First prompt token covered.")
      .def_rw("length", &MultimodalItem::length, "Tokens covered.")
      .def(
          "__eq__",
          [](const MultimodalItem& a, nb::handle b) -> nb::object {
            if (!nb::isinstance<MultimodalItem>(b)) return nb::borrow(Py_NotImplemented);
            return nb::bool_(a == nb::cast<const MultimodalItem&>(b));
          },
          nb::sig("def __eq__(self, arg: object, /) -> bool"))
      .def("__repr__", [](const MultimodalItem& i) {
        return "MultimodalItem(hash=" + std::to_string(i.hash) +
               ", offset=" + std::to_string(i.offset) + ", length=" + std::to_string(i.length) +
               ")";
      });

  nb::class_<HashKeys>(
      m, "HashKeys",
      "What besides the tokens names a KV block: tenant salt, LoRA adapter and multimodal items, "
      "folded into every block's hash so blocks computed under different keys never match. "
      "Empty keys hash exactly as TokenBlockSequence(tokens, block_size, salt=0). A value: "
      "sequences keep a copy.")
      .def(
          "__init__",
          [](HashKeys* self, std::string cache_salt, std::string lora_name,
             std::vector<MultimodalItem> items) {
            HashKeys keys;
            keys.set_cache_salt(std::move(cache_salt)).set_lora_name(std::move(lora_name));
            for (const MultimodalItem& item : items) keys.add_multimodal_item(item);
            new (self) HashKeys(std::move(keys));
          },
          "cache_salt"_a = "", "lora_name"_a = "",
          "multimodal_items"_a = std::vector<MultimodalItem>{},
          "cache_salt: a tenant's secret (requests with different salts share no block); "
          "lora_name: the adapter (empty: the base model); multimodal_items: MultimodalItems, in "
          "any order. A zero-length item raises ConfigError.")
      .def("set_cache_salt", &HashKeys::set_cache_salt, "salt"_a, nb::rv_policy::reference_internal,
           "Sets the tenant salt (empty: none); returns self.")
      .def("set_lora_name", &HashKeys::set_lora_name, "name"_a, nb::rv_policy::reference_internal,
           "Sets the LoRA adapter name (empty: the base model); returns self.")
      .def("add_multimodal_item", &HashKeys::add_multimodal_item, "item"_a,
           nb::rv_policy::reference_internal,
           "Adds an item (kept sorted by offset); a zero length raises ConfigError. Returns self.")
      .def_prop_ro("cache_salt", &HashKeys::cache_salt, "The tenant salt.")
      .def_prop_ro("lora_name", &HashKeys::lora_name, "The LoRA adapter name.")
      .def_prop_ro(
          "multimodal_items",
          [](const HashKeys& k) { return to_vector(k.multimodal_items()); },
          "The items, sorted by offset (a new list).")
      .def_prop_ro("empty", &HashKeys::empty, "True when the keys change no hash.")
      .def_prop_ro("seed", &HashKeys::seed,
                   "The seed of every block's token hash (0 for no salt and no LoRA).")
      .def("block_extra_keys", &HashKeys::block_extra_keys, "block_index"_a, "block_size"_a,
           "Hashes of the items overlapping block `block_index`, in offset order (a KV event's "
           "extra_keys for that block).")
      .def(
          "block_hash",
          [](const HashKeys& k, const std::vector<Token>& tokens, std::size_t block_index) {
            return k.block_hash(tokens, block_index);
          },
          "tokens"_a, "block_index"_a,
          "The keyed block hash of one full block whose first token is at "
          "block_index * len(tokens).")
      .def("validate", &HashKeys::validate, "prompt_tokens"_a,
           "Raises ConfigError when an item does not lie inside a prompt of that many tokens.")
      .def(
          "__eq__",
          [](const HashKeys& a, nb::handle b) -> nb::object {
            if (!nb::isinstance<HashKeys>(b)) return nb::borrow(Py_NotImplemented);
            return nb::bool_(a == nb::cast<const HashKeys&>(b));
          },
          nb::sig("def __eq__(self, arg: object, /) -> bool"))
      .def("__repr__", [](const HashKeys& k) {
        return "HashKeys(cache_salt=" + std::string(k.cache_salt().empty() ? "''" : "<set>") +
               ", lora_name='" + k.lora_name() +
               "', multimodal_items=" + std::to_string(k.multimodal_items().size()) + ")";
      });

  m.def(
      "keyed_sequence_hashes",
      [](const std::vector<Token>& tokens, std::int64_t block_size, const HashKeys& keys) {
        return keyed_sequence_hashes(tokens, checked_block_size(block_size), keys);
      },
      "tokens"_a, "block_size"_a, "keys"_a,
      "The sequence hashes of the full blocks of `tokens` under `keys` (position 0 first); with "
      "empty keys equal to TokenBlockSequence(tokens, block_size).sequence_hashes().");

  // ---- RequestSequence ----
  nb::class_<PyRequestSequence> request(
      m, "RequestSequence",
      "One request's tokens and the blocks that hold its KV, managed directly through a "
      "BlockManager of its tier. The blocks form one row in token order (page_indices()): "
      "assigned (registered) ++ staged ++ unassigned (fresh). A block is registered only when "
      "the caller says its KV exists; a partial block never is. A call that raises changed "
      "nothing. Closing (or collecting) it gives every block back, last first. Use one "
      "sequence from one thread at a time; manager calls release the GIL.");
  request
      .def(
          "__init__",
          [](PyRequestSequence* self, std::vector<std::uint32_t> prompt,
             std::size_t max_output_tokens, std::int64_t block_size,
             std::optional<HashKeys> hash_keys, const std::string& tier) {
            const std::uint32_t bs = checked_block_size(block_size);
            HashKeys keys = hash_keys ? std::move(*hash_keys) : HashKeys{};
            new (self) PyRequestSequence{by_tier<RequestSequence>(tier, [&]<class Tier>() {
              return RequestSequence<Tier>(std::move(prompt), max_output_tokens, bs,
                                           std::move(keys));
            })};
          },
          "prompt"_a, "max_output_tokens"_a, "block_size"_a, "hash_keys"_a.none() = nb::none(),
          "tier"_a = "G1",
          "prompt: token ids; block_size: a power of two equal to the manager's; tier: the "
          "tier of the managers it will use. Bad settings raise ConfigError.")
      .def(
          "match_and_add_prefix",
          [](PyRequestSequence& s, PyBlockManager& pm) {
            return on_manager(s, pm, "match_and_add_prefix",
                              [](auto& q, auto& mgr) { return q.match_and_add_prefix(mgr); });
          },
          "manager"_a,
          "Adopts the longest cached prefix (never covering the last token) as assigned blocks; "
          "returns how many. ApplyError(WrongState) if blocks are held.")
      .def(
          "allocate_blocks",
          [](PyRequestSequence& s, std::size_t n, PyBlockManager& pm) {
            return on_manager(s, pm, "allocate_blocks",
                              [n](auto& q, auto& mgr) { return q.allocate_blocks(n, mgr); });
          },
          "n"_a, "manager"_a,
          "Appends `n` fresh blocks to the row, all or nothing: False (nothing taken) when the "
          "pool cannot supply them.")
      .def(
          "stage_pending",
          [](PyRequestSequence& s) {
            return with_seq(s, "stage_pending", [](auto& q) { return q.stage_pending(); });
          },
          "Stages every unassigned block whose tokens are complete; returns how many.")
      .def(
          "register_staged",
          [](PyRequestSequence& s, PyBlockManager& pm) {
            return on_manager(s, pm, "register_staged",
                              [](auto& q, auto& mgr) { return q.register_staged(mgr); });
          },
          "manager"_a, "Registers every staged block (they become matchable); returns how many.")
      .def(
          "complete_and_register_pending",
          [](PyRequestSequence& s, PyBlockManager& pm, std::optional<std::size_t> max_blocks) {
            return on_manager(s, pm, "complete_and_register_pending", [&](auto& q, auto& mgr) {
              return max_blocks ? q.complete_and_register_pending(mgr, *max_blocks)
                                : q.complete_and_register_pending(mgr);
            });
          },
          "manager"_a, "max_blocks"_a.none() = nb::none(),
          "Stages and registers every block whose tokens are complete (only among the first "
          "`max_blocks` of the row when given): call it once their KV is computed. Returns how "
          "many were registered.")
      .def(
          "append_token",
          [](PyRequestSequence& s, std::uint32_t token) {
            return with_seq(s, "append_token", [token](auto& q) { return q.append_token(token); });
          },
          "token"_a,
          "Appends one generated token; returns the index of the block it filled, or None. "
          "Allocates and registers nothing. ApplyError(AppendExceedsRemaining) past "
          "max_output_tokens.")
      .def(
          "release",
          [](PyRequestSequence& s) {
            released(s, "release", [](auto& q) { q.release(); });
          },
          "Gives every block back, last block first (unassigned, staged, assigned). Idempotent; "
          "the sequence stays usable (see reacquire).")
      .def(
          "reacquire",
          [](PyRequestSequence& s, PyBlockManager& pm) {
            return on_manager(s, pm, "reacquire",
                              [](auto& q, auto& mgr) { return q.reacquire(mgr); });
          },
          "manager"_a,
          "After release(): re-matches what is still cached and allocates blocks for the rest, "
          "all or nothing (False: nothing held). ApplyError(WrongState) while blocks are held.")
      .def(
          "drop_last_unassigned",
          [](PyRequestSequence& s, std::size_t n) {
            return released(s, "drop_last_unassigned",
                            [n](auto& q) { return q.drop_last_unassigned(n); });
          },
          "n"_a, "Drops up to `n` unassigned blocks, last first; returns how many.")
      .def(
          "full_blocks",
          [](PyRequestSequence& s, std::size_t tokens) {
            return with_seq(s, "full_blocks", [tokens](auto& q) { return q.full_blocks(tokens); });
          },
          "tokens"_a, "Full blocks in `tokens` tokens (floor).")
      .def(
          "blocks_for",
          [](PyRequestSequence& s, std::size_t tokens) {
            return with_seq(s, "blocks_for", [tokens](auto& q) { return q.blocks_for(tokens); });
          },
          "tokens"_a, "Blocks needed to hold `tokens` tokens (ceil).");
  add_common(request, "RequestSequence");

  // ---- SchedulableSequence ----
  nb::class_<PySchedulableSequence> sched(
      m, "SchedulableSequence",
      "The two-phase protocol an engine drives every step over a request: schedule_* before the "
      "forward pass (allocates the blocks the step's KV needs, all or nothing), apply_* after it "
      "(registers exactly the blocks whose KV is now complete), or revert_schedule. A refused "
      "call raises ScheduleError / ApplyError with its `kind` and changes nothing. Closing (or "
      "collecting) it gives every block back, last first. Use one sequence from one thread at a "
      "time; manager calls release the GIL.");
  sched
      .def(
          "__init__",
          [](PySchedulableSequence* self, std::vector<std::uint32_t> tokens,
             std::size_t max_output_tokens, std::int64_t block_size,
             std::optional<HashKeys> hash_keys, nb::object delegate, const std::string& tier) {
            const std::uint32_t bs = checked_block_size(block_size);
            SequenceDelegate d = make_delegate(std::move(delegate));
            new (self) PySchedulableSequence{by_tier<SchedulableSequence>(tier, [&]<class Tier>() {
              auto builder = SchedulableSequence<Tier>::builder();
              builder.tokens(std::move(tokens)).max_output_tokens(max_output_tokens).block_size(bs);
              if (hash_keys) builder.hash_keys(std::move(*hash_keys));
              if (d) builder.delegate(std::move(d));
              return builder.build();
            })};
          },
          "tokens"_a, "max_output_tokens"_a, "block_size"_a, "hash_keys"_a.none() = nb::none(),
          "delegate"_a.none() = nb::none(), "tier"_a = "G1",
          nb::sig("def __init__(self, tokens: collections.abc.Sequence[int], "
                  "max_output_tokens: int, block_size: int, hash_keys: HashKeys | None = None, "
                  "delegate: collections.abc.Callable[[SequenceEvent], None] | None = None, "
                  "tier: str = 'G1') -> None"),
          "tokens: the prompt (non-empty); block_size: a power of two equal to the manager's; "
          "delegate: called with each SequenceEvent, on the calling thread, after the "
          "transition (its exceptions go to sys.unraisablehook; it must not call back into this "
          "sequence); tier: the tier of the managers it will use. Bad settings raise "
          "ConfigError.")
      .def(
          "match_and_add_prefix",
          [](PySchedulableSequence& s, PyBlockManager& pm) {
            return on_manager(s, pm, "match_and_add_prefix",
                              [](auto& q, auto& mgr) { return q.match_and_add_prefix(mgr); });
          },
          "manager"_a,
          "Idle, before prefill and holding nothing: adopts the longest cached prefix (never the "
          "last token) and advances prefill_position / kv_position over it; returns the blocks "
          "matched.")
      .def(
          "schedule_prefill",
          [](PySchedulableSequence& s, std::size_t n_tokens, PyBlockManager& pm) {
            on_manager(s, pm, "schedule_prefill",
                       [n_tokens](auto& q, auto& mgr) { q.schedule_prefill(n_tokens, mgr); });
          },
          "n_tokens"_a, "manager"_a,
          "Schedules the next `n_tokens` of the prefill target and allocates the blocks their KV "
          "needs.")
      .def(
          "apply_prefill",
          [](PySchedulableSequence& s, std::optional<std::uint32_t> token, PyBlockManager& pm) {
            on_manager(s, pm, "apply_prefill",
                       [token](auto& q, auto& mgr) { q.apply_prefill(token, mgr); });
          },
          "token"_a.none(), "manager"_a,
          "Commits the scheduled chunk and registers the blocks its KV completed. `token` (the "
          "first sampled token) is required on the chunk that ends prefill while output remains, "
          "and must be None otherwise.")
      .def(
          "schedule_decode",
          [](PySchedulableSequence& s, PyBlockManager& pm) {
            on_manager(s, pm, "schedule_decode", [](auto& q, auto& mgr) { q.schedule_decode(mgr); });
          },
          "manager"_a,
          "Schedules one decode step (the dangling token's KV); allocates a block when that token "
          "starts one.")
      .def(
          "apply_decode",
          [](PySchedulableSequence& s, std::uint32_t token, PyBlockManager& pm) {
            return on_manager(s, pm, "apply_decode",
                              [token](auto& q, auto& mgr) { return q.apply_decode(token, mgr); });
          },
          "token"_a, "manager"_a,
          "Commits the step: the dangling token's KV is computed, `token` becomes the dangling "
          "token. Returns a DecodeOutcome.")
      .def(
          "schedule_speculative",
          [](PySchedulableSequence& s, std::size_t n, PyBlockManager& pm) {
            on_manager(s, pm, "schedule_speculative",
                       [n](auto& q, auto& mgr) { q.schedule_speculative(n, mgr); });
          },
          "n"_a, "manager"_a,
          "Schedules the dangling token plus `n` drafts (clamped to the remaining output) and "
          "allocates the blocks their KV needs.")
      .def(
          "apply_speculative",
          [](PySchedulableSequence& s, std::vector<std::uint32_t> accepted, PyBlockManager& pm) {
            return on_manager(s, pm, "apply_speculative", [&](auto& q, auto& mgr) {
              return q.apply_speculative(accepted, mgr);
            });
          },
          "accepted"_a, "manager"_a,
          "Commits the accepted tokens (at most the drafts scheduled): registers the blocks whose "
          "KV completed and releases blocks beyond the tokens now held. Returns a DecodeOutcome.")
      .def(
          "revert_schedule",
          [](PySchedulableSequence& s) {
            released(s, "revert_schedule", [](auto& q) { q.revert_schedule(); });
          },
          "Undoes the scheduled operation: the blocks it allocated go back, last first.")
      .def(
          "drop_unassigned",
          [](PySchedulableSequence& s, std::size_t n) {
            return released(s, "drop_unassigned", [n](auto& q) { return q.drop_unassigned(n); });
          },
          "n"_a,
          "Idle: releases up to `n` unassigned blocks, last first, never one holding computed "
          "KV; returns how many.")
      .def(
          "release",
          [](PySchedulableSequence& s) { released(s, "release", [](auto& q) { q.release(); }); },
          "Idle: gives every block back, last first (preemption). Positions go back to 0 and the "
          "prefill target becomes every token held, to be recomputed.")
      .def(
          "reacquire",
          [](PySchedulableSequence& s, PyBlockManager& pm) {
            return on_manager(s, pm, "reacquire",
                              [](auto& q, auto& mgr) { return q.reacquire(mgr); });
          },
          "manager"_a,
          "Idle and holding nothing: re-matches what is still cached and allocates blocks for "
          "the rest of the prefill target, all or nothing (False: nothing changed). Continue "
          "with schedule_prefill.")
      .def(
          "append_tokens",
          [](PySchedulableSequence& s, std::vector<std::uint32_t> tokens) {
            with_seq(s, "append_tokens", [&](auto& q) { q.append_tokens(tokens); });
          },
          "tokens"_a,
          "Idle: appends tokens whose KV is not computed; ApplyError(AppendExceedsRemaining), "
          "appending nothing, past max_output_tokens.")
      .def_prop_ro(
          "state",
          [](PySchedulableSequence& s) {
            return with_seq(s, "state", [](auto& q) { return q.state(); });
          },
          "The SequenceState.")
      .def_prop_ro(
          "prefill_position",
          [](PySchedulableSequence& s) {
            return with_seq(s, "prefill_position", [](auto& q) { return q.prefill_position(); });
          },
          "Tokens of the prefill target processed.")
      .def_prop_ro(
          "prefill_target",
          [](PySchedulableSequence& s) {
            return with_seq(s, "prefill_target", [](auto& q) { return q.prefill_target(); });
          },
          "Tokens prefill must process: the prompt, or every token held at the last release().")
      .def_prop_ro(
          "is_prefill_complete",
          [](PySchedulableSequence& s) {
            return with_seq(s, "is_prefill_complete",
                            [](auto& q) { return q.is_prefill_complete(); });
          },
          "prefill_position >= prefill_target.")
      .def_prop_ro(
          "kv_position",
          [](PySchedulableSequence& s) {
            return with_seq(s, "kv_position", [](auto& q) { return q.kv_position(); });
          },
          "Tokens whose KV is computed.")
      .def_prop_ro(
          "tail_tokens",
          [](PySchedulableSequence& s) {
            return with_seq(s, "tail_tokens", [](auto& q) { return q.tail_tokens(); });
          },
          "total_tokens - kv_position (decode needs exactly 1).");
  add_common(sched, "SchedulableSequence");
}

}  // namespace kvbm::python
