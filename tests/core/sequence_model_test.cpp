// Model-based property test of SchedulableSequence: many sequences share one small pool and are
// driven by random operations (valid and invalid, schedules that cannot be served, preemptions)
// against a reference model of each sequence's positions and block counts. After every step:
// the pool's check_invariants(), every sequence's state, positions and page-row shape, the exact
// error kind of each refused call (which must change nothing), and the pool accounting: the
// blocks in use are exactly the distinct ids in the sequences' rows. At the end, releasing every
// sequence gives every block back.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <variant>
#include <vector>

#include "core/sequence_test_helpers.hpp"

namespace kvbm {
namespace {

using test::Seq;
constexpr std::uint32_t kBs = 4;

std::size_t bf(std::size_t tokens) { return detail::blocks_for(tokens, kBs); }

struct ModelSeq {
  SequenceStateKind kind = SequenceStateKind::Idle;
  std::size_t n = 0, blocks = 0;
  std::size_t pp = 0, kv = 0, target = 0, total = 0, gen = 0, max = 0, held = 0, assigned = 0;
};

using Expected = std::variant<std::monostate, ScheduleErrorKind, ApplyErrorKind>;

struct Harness {
  BlockManager<G1> m;
  std::vector<Seq> seqs;
  std::vector<ModelSeq> model;
  bool reject = false;

  // Runs `call` on sequence i; checks it threw exactly `expected` (changing nothing) or succeeded.
  template <class F>
  bool run(std::size_t i, const Expected& expected, F&& call) {
    const auto before = test::snapshot(seqs[i]);
    const std::size_t available = m.available_blocks();
    std::optional<Expected> got;
    try {
      call();
      got = std::monostate{};
    } catch (const ScheduleError& e) {
      got = e.kind();
    } catch (const ApplyError& e) {
      got = e.kind();
    }
    RC_ASSERT(*got == expected);
    if (!std::holds_alternative<std::monostate>(expected)) {
      RC_ASSERT(test::snapshot(seqs[i]) == before);
      RC_ASSERT(m.available_blocks() == available);
      return false;
    }
    return true;
  }

  void check() {
    m.check_invariants();
    std::set<BlockId> in_use;
    std::multiset<BlockId> unassigned;
    std::set<BlockId> assigned;
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      const Seq& s = seqs[i];
      const ModelSeq& x = model[i];
      RC_ASSERT(s.state().kind == x.kind);
      RC_ASSERT(s.state().num_tokens == x.n);
      RC_ASSERT(s.state().blocks_allocated == x.blocks);
      RC_ASSERT(s.prefill_position() == x.pp);
      RC_ASSERT(s.kv_position() == x.kv);
      RC_ASSERT(s.prefill_target() == x.target);
      RC_ASSERT(s.total_tokens() == x.total);
      RC_ASSERT(s.generated_tokens() == x.gen);
      RC_ASSERT(s.assigned_blocks() == x.assigned);
      RC_ASSERT(s.assigned_blocks() == s.kv_position() / kBs);  // registered = KV complete
      RC_ASSERT(s.staged_blocks() == 0u);
      const auto pages = s.page_indices();
      RC_ASSERT(pages.size() == x.held);
      RC_ASSERT(pages.size() >= bf(s.kv_position()));  // computed KV always has a home
      for (std::size_t p = 0; p < pages.size(); ++p) {
        in_use.insert(pages[p]);
        if (p < x.assigned) {
          assigned.insert(pages[p]);
        } else {
          unassigned.insert(pages[p]);
        }
      }
    }
    // A mutable block belongs to one sequence and is nobody's registered block.
    RC_ASSERT(std::set<BlockId>(unassigned.begin(), unassigned.end()).size() == unassigned.size());
    for (const BlockId id : unassigned) RC_ASSERT(!assigned.contains(id));
    // Under Allow, a block computed again while its primary is cached registers as a duplicate
    // that keeps the primary alive too: at most one extra slot per registered block.
    const std::size_t used = m.total_blocks() - m.available_blocks();
    if (reject) {
      RC_ASSERT(used == in_use.size());
    } else {
      RC_ASSERT(used >= in_use.size());
      RC_ASSERT(used <= in_use.size() + assigned.size());
    }
  }
};

void step(Harness& h, int op, int a, int b) {
  if (h.seqs.empty() || op == 0) {
    if (h.seqs.size() >= 6) return;
    // Prompts from three families sharing prefixes, so matches and duplicates happen.
    const Token family = static_cast<Token>(a % 3) * 1000;
    std::vector<Token> prompt;
    const std::size_t len = 1 + static_cast<std::size_t>(b % 19);
    for (std::size_t t = 0; t < len; ++t) prompt.push_back(family + static_cast<Token>(t));
    const std::size_t max_out = static_cast<std::size_t>(a % 7);
    h.seqs.push_back(test::make_seq(prompt, max_out, kBs));
    ModelSeq x;
    x.target = x.total = len;
    x.max = max_out;
    h.model.push_back(x);
    return;
  }
  const std::size_t i = static_cast<std::size_t>(a) % h.seqs.size();
  Seq& s = h.seqs[i];
  ModelSeq& x = h.model[i];
  const bool idle = x.kind == SequenceStateKind::Idle;
  const std::size_t avail = h.m.available_blocks();
  const auto alloc_error = [&](std::size_t need) -> Expected {
    if (need > x.held && need - x.held > avail) return ScheduleErrorKind::AllocationFailed;
    return std::monostate{};
  };
  const auto decodable = [&]() -> Expected {
    if (!idle) return ScheduleErrorKind::NotIdle;
    if (x.pp < x.target) return ScheduleErrorKind::PrefillNotComplete;
    if (x.gen >= x.max) return ScheduleErrorKind::GenerationComplete;
    if (x.total - x.kv != 1) return ScheduleErrorKind::WrongDanglingCount;
    return std::monostate{};
  };
  const auto grow = [&](std::size_t need, SequenceStateKind kind, std::size_t n) {
    const std::size_t got = need > x.held ? need - x.held : 0;
    x.held += got;
    x.kind = kind;
    x.n = n;
    x.blocks = got;
  };
  const auto idle_again = [&] {
    x.kind = SequenceStateKind::Idle;
    x.n = x.blocks = 0;
  };
  switch (op % 14) {
    case 1: {  // match
      Expected e = !idle                          ? Expected{ScheduleErrorKind::NotIdle}
                   : (x.pp != 0 || x.held != 0) ? Expected{ApplyErrorKind::WrongState}
                                                  : Expected{};
      std::size_t matched = 0;
      if (h.run(i, e, [&] { matched = s.match_and_add_prefix(h.m); })) {
        RC_ASSERT(matched <= (x.target - 1) / kBs);  // never the last token
        x.pp = x.kv = matched * kBs;
        x.held = x.assigned = matched;
      }
      break;
    }
    case 2: {  // schedule_prefill
      const std::size_t n = static_cast<std::size_t>(b) % (x.target + 3);
      Expected e = !idle                ? Expected{ScheduleErrorKind::NotIdle}
                   : x.pp >= x.target ? Expected{ScheduleErrorKind::PrefillComplete}
                   : n > x.target - x.pp ? Expected{ScheduleErrorKind::PrefillOverrun}
                                         : alloc_error(bf(x.pp + n));
      if (h.run(i, e, [&] { s.schedule_prefill(n, h.m); })) {
        grow(bf(x.pp + n), SequenceStateKind::PrefillScheduled, n);
      }
      break;
    }
    case 3: {  // apply_prefill
      const bool give = b % 2 == 0;
      const bool final_chunk = x.pp + x.n >= x.target;
      Expected e = x.kind != SequenceStateKind::PrefillScheduled
                       ? Expected{ApplyErrorKind::WrongState}
                   : (give && !final_chunk) ? Expected{ApplyErrorKind::TokenOnNonFinalChunk}
                   : (final_chunk && !give && x.gen < x.max)
                       ? Expected{ApplyErrorKind::MissingTokenOnFinalChunk}
                   : (give && x.gen >= x.max) ? Expected{ApplyErrorKind::AppendExceedsRemaining}
                                              : Expected{};
      if (h.run(i, e, [&] {
            s.apply_prefill(give ? std::optional<Token>(static_cast<Token>(b)) : std::nullopt,
                            h.m);
          })) {
        x.pp += x.n;
        x.kv = x.pp;
        x.assigned = x.kv / kBs;
        if (give) ++x.total, ++x.gen;
        idle_again();
      }
      break;
    }
    case 4: {  // schedule_decode
      Expected e = decodable();
      if (std::holds_alternative<std::monostate>(e)) e = alloc_error(bf(x.kv + 1));
      if (h.run(i, e, [&] { s.schedule_decode(h.m); })) {
        grow(bf(x.kv + 1), SequenceStateKind::DecodeScheduled, 0);
      }
      break;
    }
    case 5: {  // apply_decode
      Expected e = x.kind != SequenceStateKind::DecodeScheduled
                       ? Expected{ApplyErrorKind::WrongState}
                       : Expected{};
      DecodeOutcome outcome{};
      if (h.run(i, e, [&] { outcome = s.apply_decode(static_cast<Token>(b), h.m); })) {
        ++x.total, ++x.gen, ++x.kv;
        const bool completed = x.kv / kBs > x.assigned;
        x.assigned = x.kv / kBs;
        const bool max_length = x.gen >= x.max;
        RC_ASSERT(outcome == (completed ? (max_length ? DecodeOutcome::BlockCompletedAndMaxLength
                                                      : DecodeOutcome::BlockCompleted)
                                        : (max_length ? DecodeOutcome::MaxLength
                                                      : DecodeOutcome::Continue)));
        idle_again();
      }
      break;
    }
    case 6: {  // schedule_speculative
      const std::size_t n = static_cast<std::size_t>(b) % 6;
      Expected e = decodable();
      const std::size_t clamped = std::min(n, x.max - std::min(x.gen, x.max));
      if (std::holds_alternative<std::monostate>(e)) e = alloc_error(bf(x.kv + 1 + clamped));
      if (h.run(i, e, [&] { s.schedule_speculative(n, h.m); })) {
        grow(bf(x.kv + 1 + clamped), SequenceStateKind::SpeculativeScheduled, clamped);
      }
      break;
    }
    case 7: {  // apply_speculative
      const std::size_t k = static_cast<std::size_t>(b) % 7;
      Expected e = x.kind != SequenceStateKind::SpeculativeScheduled
                       ? Expected{ApplyErrorKind::WrongState}
                   : k > x.n ? Expected{ApplyErrorKind::AcceptedExceedsScheduled}
                             : Expected{};
      const std::vector<Token> accepted(k, static_cast<Token>(b));
      if (h.run(i, e, [&] { (void)s.apply_speculative(accepted, h.m); })) {
        x.total += k, x.gen += k, x.kv += k;
        x.assigned = x.kv / kBs;
        x.held = std::min(x.held, bf(x.total));
        idle_again();
      }
      break;
    }
    case 8: {  // revert
      if (h.run(i, idle ? Expected{ApplyErrorKind::WrongState} : Expected{},
                [&] { s.revert_schedule(); })) {
        x.held -= x.blocks;
        idle_again();
      }
      break;
    }
    case 9: {  // drop_unassigned
      std::size_t dropped = 0;
      const std::size_t n = static_cast<std::size_t>(b) % 3;
      if (h.run(i, idle ? Expected{} : Expected{ApplyErrorKind::WrongState},
                [&] { dropped = s.drop_unassigned(n); })) {
        const std::size_t first = std::max(bf(x.kv), x.assigned);
        const std::size_t droppable = x.held > first ? x.held - first : 0;
        RC_ASSERT(dropped == std::min(n, droppable));
        x.held -= dropped;
      }
      break;
    }
    case 10:  // release (preemption)
      if (h.run(i, idle ? Expected{} : Expected{ApplyErrorKind::WrongState},
                [&] { s.release(); })) {
        x.held = x.assigned = x.pp = x.kv = 0;
        x.target = x.total;
      }
      break;
    case 11: {  // reacquire
      Expected e = (!idle || x.pp != 0 || x.held != 0) ? Expected{ApplyErrorKind::WrongState}
                                                        : Expected{};
      bool ok = false;
      if (h.run(i, e, [&] { ok = s.reacquire(h.m); })) {
        if (avail >= bf(x.target)) RC_ASSERT(ok);
        if (ok) {
          const std::size_t matched = s.prefix_matched_blocks();
          RC_ASSERT(matched <= (x.target - 1) / kBs);
          x.held = bf(x.target);
          x.assigned = matched;
          x.pp = x.kv = matched * kBs;
        } else {
          RC_ASSERT(h.m.available_blocks() == avail);
        }
      }
      break;
    }
    case 12: {  // append_tokens
      const std::size_t k = static_cast<std::size_t>(b) % 3;
      const std::vector<Token> tokens(k, 7);
      const bool too_many = k > x.max - std::min(x.gen, x.max);
      Expected e = !idle      ? Expected{ApplyErrorKind::WrongState}
                   : too_many ? Expected{ApplyErrorKind::AppendExceedsRemaining}
                              : Expected{};
      if (h.run(i, e, [&] { s.append_tokens(tokens); })) x.total += k, x.gen += k;
      break;
    }
    case 13:  // the request goes away
      h.seqs.erase(h.seqs.begin() + static_cast<std::ptrdiff_t>(i));
      h.model.erase(h.model.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    default:
      break;
  }
}

RC_GTEST_PROP(SequenceModel, RandomSchedulesAgainstOnePool,
              (std::vector<std::tuple<std::uint8_t, std::uint8_t, std::uint8_t>> ops)) {
  test::ManagerOptions o;
  o.block_count = *rc::gen::inRange<std::size_t>(3, 16);
  o.policy = *rc::gen::element(DuplicationPolicy::Allow, DuplicationPolicy::Reject);
  o.backend = *rc::gen::element(EvictionBackend::Lru, EvictionBackend::Lineage);
  Harness h{test::make_manager<G1>(o, test::make_registry()), {}, {},
            o.policy == DuplicationPolicy::Reject};
  for (const auto& [op, a, b] : ops) {
    step(h, op, a, b);
    h.check();
  }
  // Everything comes back.
  for (auto& s : h.seqs) {
    if (s.state().kind != SequenceStateKind::Idle) s.revert_schedule();
    s.release();
  }
  h.m.check_invariants();
  RC_ASSERT(h.m.available_blocks() == h.m.total_blocks());
}

}  // namespace
}  // namespace kvbm
