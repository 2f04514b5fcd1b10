// DeviceBlockTable on the host backend (Thrust CPP system on HostStream) against the reference.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kvbm/device_block_table.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "table_reference.hpp"

namespace kvbm {
namespace {

using testing::ReferenceTable;

DeviceBlockTableConfig small_config() {
  DeviceBlockTableConfig c;
  c.max_requests = 8;
  c.max_blocks_per_request = 6;
  c.block_size = 4;
  c.max_batch_requests = 5;
  c.max_batch_tokens = 40;
  c.max_staging_slots = 3;
  return c;
}

std::vector<std::int32_t> download(DeviceBlockTable& table, HostStream& stream) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(table.config().max_requests) *
                                table.config().max_blocks_per_request);
  table.download_table(stream, out).wait();
  return out;
}

TEST(DeviceBlockTable, StartsAllPadding) {
  HostStream stream;
  const auto table_owner = make_host_device_block_table(small_config());
  DeviceBlockTable& table = *table_owner;
  for (const auto v : download(table, stream)) EXPECT_EQ(v, -1);
  EXPECT_TRUE(table.sync(stream).ready());  // nothing to upload
  EXPECT_EQ(table.stats().syncs, 0U);
}

TEST(DeviceBlockTable, EditsReachTheDeviceAfterSync) {
  HostStream stream;
  const auto config = small_config();
  const auto table_owner = make_host_device_block_table(config);
  DeviceBlockTable& table = *table_owner;
  ReferenceTable model{config};
  table.assign(2, std::vector<std::int32_t>{7, 8, 9});
  model.rows[2] = {7, 8, 9};
  table.append(2, std::vector<std::int32_t>{10});
  model.rows[2].push_back(10);
  table.append(5, std::vector<std::int32_t>{1, 2});
  model.rows[5] = {1, 2};
  EXPECT_EQ(download(table, stream), ReferenceTable{config}.dense());  // not synced yet
  table.sync(stream).wait();
  EXPECT_EQ(download(table, stream), model.dense());
  EXPECT_EQ(table.row_length(2), 4);
  EXPECT_EQ(std::vector<std::int32_t>(table.row(2).begin(), table.row(2).end()),
            (std::vector<std::int32_t>{7, 8, 9, 10}));

  table.truncate(2, 1);
  model.rows[2].resize(1);
  table.clear(5);
  model.rows[5].clear();
  table.sync(stream).wait();
  EXPECT_EQ(download(table, stream), model.dense());
}

TEST(DeviceBlockTable, BytesMovedAreProportionalToChangedCells) {
  HostStream stream;
  DeviceBlockTableConfig c;
  c.max_requests = 1024;
  c.max_blocks_per_request = 256;
  const auto table_owner = make_host_device_block_table(c);
  DeviceBlockTable& table = *table_owner;
  for (std::int32_t r = 0; r < 3; ++r) table.append(r, std::vector<std::int32_t>{r + 100});
  table.sync(stream).wait();
  EXPECT_EQ(table.stats().cells_uploaded, 3U);
  EXPECT_EQ(table.stats().bytes_uploaded, 3U * 8U);  // (index, value) per cell, not 1 MiB

  // A decode step: one new block per request.
  for (std::int32_t r = 0; r < 3; ++r) table.append(r, std::vector<std::int32_t>{r + 200});
  table.sync(stream).wait();
  EXPECT_EQ(table.stats().cells_uploaded, 6U);

  // Edited back to what the device already holds: nothing moves.
  table.truncate(0, 0);
  table.append(0, std::vector<std::int32_t>{100, 200});
  table.assign(1, std::vector<std::int32_t>{101, 201});
  EXPECT_GT(table.pending_cells(), 0U);
  table.sync(stream).wait();
  EXPECT_EQ(table.stats().cells_uploaded, 6U);
  EXPECT_EQ(table.stats().syncs, 2U);
}

TEST(DeviceBlockTable, MassEditsUploadTheWholeTableOnce) {
  HostStream stream;
  const auto config = small_config();  // 8 x 6 = 48 cells
  const auto table_owner = make_host_device_block_table(config);
  DeviceBlockTable& table = *table_owner;
  ReferenceTable model{config};
  for (std::int32_t r = 0; r < config.max_requests; ++r) {
    const std::vector<std::int32_t> blocks{r, r + 10, r + 20, r + 30};  // 32 of 48 cells change
    table.assign(r, blocks);
    model.rows[static_cast<std::size_t>(r)] = blocks;
  }
  table.sync(stream).wait();
  EXPECT_EQ(table.stats().full_uploads, 1U);
  EXPECT_EQ(table.stats().cells_uploaded, 32U);
  EXPECT_EQ(table.stats().bytes_uploaded, 48U * 4U);  // one plain copy, less than 32 x 8
  EXPECT_EQ(download(table, stream), model.dense());
  table.append(3, std::vector<std::int32_t>{99});  // back to deltas
  model.rows[3].push_back(99);
  table.sync(stream).wait();
  EXPECT_EQ(table.stats().full_uploads, 1U);
  EXPECT_EQ(table.stats().bytes_uploaded, 48U * 4U + 8U);
  EXPECT_EQ(download(table, stream), model.dense());
}

TEST(DeviceBlockTable, RejectsBadEdits) {
  HostStream stream;
  const auto table_owner = make_host_device_block_table(small_config());
  DeviceBlockTable& table = *table_owner;
  EXPECT_THROW(table.assign(8, std::vector<std::int32_t>{1}), std::out_of_range);
  EXPECT_THROW(table.assign(-1, std::vector<std::int32_t>{1}), std::out_of_range);
  EXPECT_THROW(table.assign(0, std::vector<std::int32_t>(7, 1)), std::out_of_range);
  table.append(0, std::vector<std::int32_t>(6, 1));
  EXPECT_THROW(table.append(0, std::vector<std::int32_t>{1}), std::out_of_range);
  EXPECT_EQ(table.row_length(0), 6);
  EXPECT_THROW(table.truncate(0, -1), std::out_of_range);
  EXPECT_THROW(table.prepare_batch(stream, std::vector<BatchEntry>(6)), std::out_of_range);
  EXPECT_THROW(table.prepare_batch(stream, std::vector<BatchEntry>{{0, 20, 5}}), std::out_of_range);
  EXPECT_THROW(table.sync(StreamRef::cuda(nullptr)), Error);
  DeviceBlockTableConfig bad;
  EXPECT_THROW(static_cast<void>(make_host_device_block_table(bad)), ConfigError);
}

TEST(DeviceBlockTable, LayoutsMatchTheReference) {
  HostStream stream;
  const auto config = small_config();
  const auto table_owner = make_host_device_block_table(config);
  DeviceBlockTable& table = *table_owner;
  ReferenceTable model{config};
  table.assign(0, std::vector<std::int32_t>{10, 11, 12});
  model.rows[0] = {10, 11, 12};
  table.assign(3, std::vector<std::int32_t>{30});
  model.rows[3] = {30};
  table.sync(stream);
  // Request 0: prefill of 9 tokens (3 pages, last page 1 token); request 3: decode at position 2;
  // request 1: empty row (slots -1, 1 page of -1); request 4: no tokens at all.
  const std::vector<BatchEntry> batch{{0, 0, 9}, {3, 2, 1}, {1, 0, 2}, {4, 0, 0}};
  table.prepare_batch(stream, batch);
  BatchLayoutsHost got;
  table.download_layouts(stream, got).wait();
  const BatchLayoutsHost want = model.layouts(batch);
  EXPECT_EQ(got.slot_mapping, want.slot_mapping);
  EXPECT_EQ(got.kv_indptr, want.kv_indptr);
  EXPECT_EQ(got.kv_indices, want.kv_indices);
  EXPECT_EQ(got.kv_last_page_len, want.kv_last_page_len);
  EXPECT_EQ(got.slot_mapping[0], 40);
  EXPECT_EQ(got.slot_mapping[8], 48);
  EXPECT_EQ(got.slot_mapping[9], 122);
  EXPECT_EQ(got.slot_mapping[12], -1);  // padding
  EXPECT_EQ((std::vector<std::int32_t>(got.kv_indptr.begin(), got.kv_indptr.begin() + 5)),
            (std::vector<std::int32_t>{0, 3, 4, 5, 5}));
  EXPECT_EQ(got.kv_last_page_len[0], 1);
  EXPECT_EQ(got.kv_last_page_len[1], 3);

  const DeviceTableView view = table.view();
  EXPECT_EQ(view.table[0], 10);  // stream is idle: direct reads are ordered
  EXPECT_EQ(view.kv_indptr[1], 3);
}

// Edit batch B while batch A's upload is held in flight at a gate: A arrives untorn (its staging
// slot is not reused for B), then B lands on top.
TEST(DeviceBlockTable, OverlapEditWhileUploadInFlight) {
  HostStream stream;
  const auto config = small_config();
  const auto table_owner = make_host_device_block_table(config);
  DeviceBlockTable& table = *table_owner;
  ReferenceTable model{config};
  HostGate gate_a;
  HostGate gate_b;
  std::vector<std::int32_t> snapshot_a(48);
  std::vector<std::int32_t> snapshot_b(48);

  stream.wait(gate_a.fence());
  table.assign(1, std::vector<std::int32_t>{1, 2, 3, 4});
  table.assign(2, std::vector<std::int32_t>{5, 6});
  model.rows[1] = {1, 2, 3, 4};
  model.rows[2] = {5, 6};
  const Fence fence_a = table.sync(stream);
  const auto want_a = model.dense();
  const Fence done_a = table.download_table(stream, snapshot_a);
  stream.wait(gate_b.fence());

  // Batch B rewrites the same cells (and more) while A is still queued.
  table.assign(1, std::vector<std::int32_t>{9, 9});
  table.truncate(2, 0);
  table.append(2, std::vector<std::int32_t>{7, 7, 7});
  table.append(6, std::vector<std::int32_t>{8});
  model.rows[1] = {9, 9};
  model.rows[2] = {7, 7, 7};
  model.rows[6] = {8};
  const Fence fence_b = table.sync(stream);
  const Fence done_b = table.download_table(stream, snapshot_b);

  EXPECT_FALSE(fence_a.ready());
  EXPECT_FALSE(fence_b.ready());
  EXPECT_EQ(table.stats().staging_slots, 2U);  // B took a second slot: A's is still in flight
  EXPECT_EQ(table.stats().staging_waits, 0U);

  gate_a.open();
  done_a.wait();  // A and its snapshot ran; the worker now sits at gate_b
  EXPECT_TRUE(fence_a.ready());
  EXPECT_EQ(snapshot_a, want_a);
  EXPECT_FALSE(fence_b.ready());
  gate_b.open();
  done_b.wait();
  EXPECT_EQ(snapshot_b, model.dense());
}

// Ring depth 1: the second sync must wait for the first upload's fence instead of overwriting
// the staging slot the held upload still reads.
TEST(DeviceBlockTable, FullRingWaitsForTheOldestFence) {
  HostStream stream;
  auto config = small_config();
  config.max_staging_slots = 1;
  const auto table_owner = make_host_device_block_table(config);
  DeviceBlockTable& table = *table_owner;
  ReferenceTable model{config};
  HostGate gate;
  std::vector<std::int32_t> snapshot_a(48);

  stream.wait(gate.fence());
  table.assign(0, std::vector<std::int32_t>{1, 2, 3});
  model.rows[0] = {1, 2, 3};
  table.sync(stream);
  const auto want_a = model.dense();
  table.download_table(stream, snapshot_a);

  table.assign(0, std::vector<std::int32_t>{4});
  model.rows[0] = {4};
  std::thread opener{[&gate] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    gate.open();
  }};
  table.sync(stream).wait();  // blocks in the ring until the gate opens
  opener.join();
  EXPECT_EQ(snapshot_a, want_a);
  EXPECT_EQ(download(table, stream), model.dense());
  EXPECT_EQ(table.stats().staging_slots, 1U);
  EXPECT_LE(table.stats().staging_waits, 1U);
}

// Randomized edit sequences, syncs, batches and gates, compared with the reference after each.
TEST(DeviceBlockTable, RandomizedAgainstReference) {
  for (std::uint32_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng{seed};
    DeviceBlockTableConfig config;
    config.max_requests = std::uniform_int_distribution<std::int32_t>(1, 12)(rng);
    config.max_blocks_per_request = std::uniform_int_distribution<std::int32_t>(1, 9)(rng);
    config.block_size = std::uniform_int_distribution<std::int32_t>(1, 8)(rng);
    config.max_batch_requests = std::uniform_int_distribution<std::int32_t>(1, 6)(rng);
    config.max_batch_tokens = std::uniform_int_distribution<std::int32_t>(1, 64)(rng);
    config.max_staging_slots = std::uniform_int_distribution<std::size_t>(2, 4)(rng);
    HostStream stream;
    const auto table_owner = make_host_device_block_table(config);
    DeviceBlockTable& table = *table_owner;
    ReferenceTable model{config};
    const std::size_t cells = static_cast<std::size_t>(config.max_requests) * config.max_blocks_per_request;

    for (int step = 0; step < 40; ++step) {
      // Hold the stream for some steps: uploads queue up behind a gate while edits continue.
      const bool held = std::uniform_int_distribution<int>(0, 2)(rng) == 0;
      HostGate gate;
      if (held) stream.wait(gate.fence());
      const int edits = std::uniform_int_distribution<int>(0, 6)(rng);
      for (int e = 0; e < edits; ++e) testing::random_edit(rng, table, model);
      table.sync(stream);
      auto snapshot = std::make_shared<std::vector<std::int32_t>>(cells);
      const Fence downloaded = table.download_table(stream, *snapshot);
      const auto want = model.dense();
      std::vector<BatchEntry> batch = testing::random_batch(rng, model);
      auto layouts = std::make_shared<BatchLayoutsHost>();
      table.prepare_batch(stream, batch);
      const Fence laid_out = table.download_layouts(stream, *layouts);
      if (held) {
        EXPECT_FALSE(downloaded.ready());
        gate.open();
      }
      downloaded.wait();
      laid_out.wait();
      ASSERT_EQ(*snapshot, want) << "step " << step;
      const BatchLayoutsHost ref = model.layouts(batch);
      ASSERT_EQ(layouts->slot_mapping, ref.slot_mapping) << "step " << step;
      ASSERT_EQ(layouts->kv_indptr, ref.kv_indptr) << "step " << step;
      ASSERT_EQ(layouts->kv_indices, ref.kv_indices) << "step " << step;
      ASSERT_EQ(layouts->kv_last_page_len, ref.kv_last_page_len) << "step " << step;
    }
  }
}

// Several syncs queued behind one gate, each snapshotted: every intermediate table arrives
// exactly as it was when its sync was called (no staging slot is reused while in flight).
TEST(DeviceBlockTable, RandomizedQueuedSyncsArriveUntorn) {
  for (std::uint32_t seed = 100; seed < 130; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng{seed};
    auto config = small_config();
    config.max_staging_slots = 8;
    HostStream stream;
    const auto table_owner = make_host_device_block_table(config);
    DeviceBlockTable& table = *table_owner;
    ReferenceTable model{config};
    HostGate gate;
    stream.wait(gate.fence());
    std::vector<std::vector<std::int32_t>> wants;
    std::vector<std::unique_ptr<std::vector<std::int32_t>>> snapshots;
    for (int k = 0; k < 6; ++k) {  // 6 uploads + 6 downloads in flight, ring of 8
      for (int e = 0; e < 4; ++e) testing::random_edit(rng, table, model);
      table.sync(stream);
      snapshots.push_back(std::make_unique<std::vector<std::int32_t>>(48));
      table.download_table(stream, *snapshots.back());
      wants.push_back(model.dense());
    }
    EXPECT_EQ(table.stats().staging_waits, 0U);
    gate.open();
    stream.synchronize();
    for (std::size_t k = 0; k < wants.size(); ++k) EXPECT_EQ(*snapshots[k], wants[k]) << k;
  }
}

}  // namespace
}  // namespace kvbm
