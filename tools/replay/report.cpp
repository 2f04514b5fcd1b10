#include "replay/report.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

namespace kvbm::replay {

namespace {

double ratio(std::uint64_t num, std::uint64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  std::ostringstream os;
  os << std::fixed << std::setprecision(unit == 0 ? 0 : 1) << value << ' ' << kUnits[unit];
  return os.str();
}

std::string percent(double fraction) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << 100.0 * fraction << " %";
  return os.str();
}

nlohmann::json tier_json(const TierReport& tier, std::uint64_t requested) {
  return {{"capacity", tier.capacity},
          {"blocks_hit", tier.blocks_hit},
          {"hit_rate", ratio(tier.blocks_hit, requested)},
          {"evictions", tier.evictions},
          {"peak_occupancy", tier.peak_occupancy}};
}

}  // namespace

Percentiles percentiles(std::vector<double>& values) {
  Percentiles p;
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  const auto rank = [&](double q) {
    const auto n = values.size();
    auto index = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
    index = std::clamp<std::size_t>(index, 1, n);
    return values[index - 1];
  };
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  p.max = values.back();
  p.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  return p;
}

double ReplayReport::hit_rate() const noexcept { return ratio(g1.blocks_hit, blocks_requested); }
double ReplayReport::g2_hit_rate() const noexcept { return ratio(g2.blocks_hit, blocks_requested); }
double ReplayReport::total_hit_rate() const noexcept {
  return ratio(g1.blocks_hit + g2.blocks_hit, blocks_requested);
}

nlohmann::json to_json(const ReplayReport& r) {
  nlohmann::json j = {
      {"mode", r.mode},
      {"policy", r.policy},
      {"block_size", r.block_size},
      {"salt", r.salt},
      {"requests", r.requests},
      {"rejected", r.rejected},
      {"bad_lines", r.bad_lines},
      {"blocks", r.g1.capacity},
      {"blocks_requested", r.blocks_requested},
      {"blocks_hit", r.g1.blocks_hit},
      {"hit_rate", r.hit_rate()},
      {"evictions", r.g1.evictions},
      {"dedup_registrations", r.dedup_registrations},
      {"prompt_tokens", r.prompt_tokens},
      {"prefill_tokens_saved", r.prefill_tokens_saved},
      {"wall_seconds", r.wall_seconds},
  };
  if (r.mode == "serve") {
    j["tiers"] = {{"g1", tier_json(r.g1, r.blocks_requested)}};
    if (r.has_g2) j["tiers"]["g2"] = tier_json(r.g2, r.blocks_requested);
    j["total_hit_rate"] = r.total_hit_rate();
    j["decode_blocks"] = r.decode_blocks;
    j["prefill_chunks"] = r.prefill_chunks;
    j["preemptions"] = r.preemptions;
    j["offload_blocks"] = r.offload_blocks;
    j["offload_bytes"] = r.offload_bytes;
    j["onboard_blocks"] = r.onboard_blocks;
    j["onboard_bytes"] = r.onboard_bytes;
    j["transfer_copies"] = r.transfer_copies;
    j["transfer_bytes"] = r.transfer_bytes;
    j["queue_delay_ms"] = {{"p50", r.queue_delay_ms.p50},
                           {"p90", r.queue_delay_ms.p90},
                           {"p99", r.queue_delay_ms.p99},
                           {"max", r.queue_delay_ms.max},
                           {"mean", r.queue_delay_ms.mean}};
    j["peak_queue_length"] = r.peak_queue_length;
    j["peak_occupancy"] = r.g1.peak_occupancy;
    j["makespan_s"] = r.makespan_s;
  }
  if (r.kv_events) {
    j["kv_events"] = {{"events_published", r.events_published},
                      {"batches_dropped", r.event_batches_dropped}};
  }
  return j;
}

void print_summary(std::ostream& os, const ReplayReport& r) {
  const auto row = [&](const std::string& name, const std::string& value) {
    os << "  " << std::left << std::setw(28) << name << value << '\n';
  };
  const auto num = [](auto v) { return std::to_string(v); };
  const auto fixed = [](double v, int digits) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(digits) << v;
    return s.str();
  };
  os << "kvbm-replay: mode " << r.mode << ", policy " << r.policy << ", G1 " << r.g1.capacity
     << " blocks";
  if (r.has_g2) os << ", G2 " << r.g2.capacity << " blocks";
  os << ", block size " << r.block_size << " tokens\n";
  row("requests", num(r.requests));
  row("rejected (too large)", num(r.rejected));
  if (r.bad_lines != 0) row("bad lines skipped", num(r.bad_lines));
  row("prompt blocks requested", num(r.blocks_requested));
  row("G1 blocks hit", num(r.g1.blocks_hit) + "  (" + percent(r.hit_rate()) + ")");
  if (r.has_g2) {
    row("G2 blocks hit (onboarded)", num(r.g2.blocks_hit) + "  (" + percent(r.g2_hit_rate()) + ")");
    row("total hit rate", percent(r.total_hit_rate()));
  }
  row("prefill tokens saved", num(r.prefill_tokens_saved) + " of " + num(r.prompt_tokens) + "  (" +
                                  percent(ratio(r.prefill_tokens_saved, r.prompt_tokens)) + ")");
  row("G1 evictions", num(r.g1.evictions));
  if (r.dedup_registrations != 0) row("dedup registrations", num(r.dedup_registrations));
  if (r.mode == "serve") {
    if (r.has_g2) {
      row("G2 evictions", num(r.g2.evictions));
      row("offloaded G1 -> G2", num(r.offload_blocks) + " blocks, " + human_bytes(r.offload_bytes));
      row("onboarded G2 -> G1", num(r.onboard_blocks) + " blocks, " + human_bytes(r.onboard_bytes));
      if (r.transfer_copies != 0) {
        row("TransferEngine (host)",
            num(r.transfer_copies) + " copies, " + human_bytes(r.transfer_bytes) + " moved");
      }
    }
    row("decode blocks", num(r.decode_blocks));
    row("prefill chunks", num(r.prefill_chunks));
    row("preemptions", num(r.preemptions));
    row("peak G1 occupancy", num(r.g1.peak_occupancy) + " of " + num(r.g1.capacity) + " blocks");
    row("queue delay p50/p90/p99", fixed(r.queue_delay_ms.p50, 1) + " / " +
                                       fixed(r.queue_delay_ms.p90, 1) + " / " +
                                       fixed(r.queue_delay_ms.p99, 1) + " ms");
    row("queue delay max / mean",
        fixed(r.queue_delay_ms.max, 1) + " / " + fixed(r.queue_delay_ms.mean, 1) + " ms");
    row("peak queue length", num(r.peak_queue_length));
    row("simulated makespan", fixed(r.makespan_s, 1) + " s");
  }
  if (r.kv_events) {
    row("KV events published", num(r.events_published));
    row("KV event batches dropped", num(r.event_batches_dropped));
  }
  row("replay wall time", fixed(r.wall_seconds, 3) + " s");
}

std::string csv_header() {
  return "mode,policy,blocks,g2_blocks,block_size,requests,rejected,blocks_requested,blocks_hit,"
         "hit_rate,g2_blocks_hit,g2_hit_rate,total_hit_rate,evictions,g2_evictions,"
         "prefill_tokens_saved,prompt_tokens,offload_bytes,onboard_bytes,queue_delay_p50_ms,"
         "queue_delay_p99_ms,peak_occupancy,wall_seconds";
}

std::string csv_row(const ReplayReport& r) {
  std::ostringstream os;
  os << std::setprecision(6);
  os << r.mode << ',' << r.policy << ',' << r.g1.capacity << ',' << (r.has_g2 ? r.g2.capacity : 0)
     << ',' << r.block_size << ',' << r.requests << ',' << r.rejected << ',' << r.blocks_requested
     << ',' << r.g1.blocks_hit << ',' << r.hit_rate() << ',' << r.g2.blocks_hit << ','
     << r.g2_hit_rate() << ',' << r.total_hit_rate() << ',' << r.g1.evictions << ','
     << r.g2.evictions << ',' << r.prefill_tokens_saved << ',' << r.prompt_tokens << ','
     << r.offload_bytes << ',' << r.onboard_bytes << ',' << r.queue_delay_ms.p50 << ','
     << r.queue_delay_ms.p99 << ',' << r.g1.peak_occupancy << ',' << r.wall_seconds;
  return os.str();
}

}  // namespace kvbm::replay
