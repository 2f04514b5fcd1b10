// Host backend of DeviceBlockTable: "device" memory is host memory, the device work is the shared
// Thrust code (kvbm/detail/block_table_ops.inl) built for THRUST_DEVICE_SYSTEM_CPP and run as
// tasks on the HostStream, so stream order, fences and staging reuse behave as on CUDA.
#define THRUST_HOST_SYSTEM THRUST_HOST_SYSTEM_CPP
#define THRUST_DEVICE_SYSTEM THRUST_DEVICE_SYSTEM_CPP

#include <algorithm>
#include <cstring>
#include <vector>

#include <thrust/system/cpp/execution_policy.h>

#include "kvbm/detail/table_backend.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"

#define KVBM_TABLE_OPS_NS host_impl
#include "kvbm/detail/block_table_ops.inl"

namespace kvbm::detail {
namespace {

class HostStaging final : public StagingBuffer {
 public:
  explicit HostStaging(std::size_t bytes)
      : host_(bytes), device_((bytes + sizeof(std::int32_t) - 1) / sizeof(std::int32_t)) {}
  std::byte* host() noexcept override { return host_.data(); }
  std::size_t capacity() const noexcept override { return host_.size(); }
  std::int32_t* device() noexcept { return device_.data(); }

 private:
  std::vector<std::byte> host_;        // "pinned" staging, written by the owner thread
  std::vector<std::int32_t> device_;   // "device" scratch, written by the stream worker
};

class HostTableBackend final : public TableBackend {
 public:
  explicit HostTableBackend(const DeviceBlockTableConfig& c)
      : config_{c},
        table_(table_extents(c).table, -1),
        slot_mapping_(table_extents(c).slot_mapping, -1),
        indptr_(table_extents(c).indptr, 0),
        indices_(table_extents(c).indices, -1),
        last_page_len_(table_extents(c).last_page_len, 0),
        arrays_{table_device_arrays(c, table_.data(), slot_mapping_.data(), indptr_.data(),
                                    indices_.data(), last_page_len_.data())} {}

  StreamRef::Kind stream_kind() const noexcept override { return StreamRef::Kind::Host; }

  std::unique_ptr<StagingBuffer> make_staging(std::size_t bytes) override {
    return std::make_unique<HostStaging>(bytes);
  }

  Fence upload_cells(StreamRef stream, StagingBuffer& staging, std::size_t count) override {
    auto& buffer = static_cast<HostStaging&>(staging);
    HostStream& s = stream.host();
    s.enqueue([this, &buffer, count] {
      // staging -> device scratch (the H2D copy), then the scatter from the scratch.
      std::memcpy(buffer.device(), buffer.host(),
                  staging::cell_upload_ints(count) * sizeof(std::int32_t));
      host_impl::scatter_cells(thrust::cpp::par, buffer.device(),
                               static_cast<std::int32_t>(count), table_.data());
    });
    return s.record();
  }

  Fence upload_table(StreamRef stream, StagingBuffer& staging) override {
    auto& buffer = static_cast<HostStaging&>(staging);
    HostStream& s = stream.host();
    s.enqueue([this, &buffer] {
      std::memcpy(table_.data(), buffer.host(), table_.size() * sizeof(std::int32_t));
    });
    return s.record();
  }

  Fence build_layouts(StreamRef stream, StagingBuffer& staging, std::size_t count) override {
    auto& buffer = static_cast<HostStaging&>(staging);
    HostStream& s = stream.host();
    s.enqueue([this, &buffer, count] {
      std::memcpy(buffer.device(), buffer.host(),
                  staging::batch_input_ints(count) * sizeof(std::int32_t));
      host_impl::build_layouts(
          thrust::cpp::par,
          host_impl::layout_args(arrays_, buffer.device(), static_cast<std::int32_t>(count)));
    });
    return s.record();
  }

  Fence download_table(StreamRef stream, std::int32_t* out) override {
    HostStream& s = stream.host();
    s.enqueue([this, out] { std::copy(table_.begin(), table_.end(), out); });
    return s.record();
  }

  Fence download_layouts(StreamRef stream, BatchLayoutsHost& out) override {
    HostStream& s = stream.host();
    s.enqueue([this, &out] {
      std::copy(slot_mapping_.begin(), slot_mapping_.end(), out.slot_mapping.begin());
      std::copy(indptr_.begin(), indptr_.end(), out.kv_indptr.begin());
      std::copy(indices_.begin(), indices_.end(), out.kv_indices.begin());
      std::copy(last_page_len_.begin(), last_page_len_.end(), out.kv_last_page_len.begin());
    });
    return s.record();
  }

  DeviceTableView view() const noexcept override {
    return {table_.data(),       config_.max_requests, config_.max_blocks_per_request,
            slot_mapping_.data(), indptr_.data(),      indices_.data(),
            last_page_len_.data()};
  }

 private:
  DeviceBlockTableConfig config_;
  std::vector<std::int32_t> table_;
  std::vector<std::int64_t> slot_mapping_;
  std::vector<std::int32_t> indptr_;
  std::vector<std::int32_t> indices_;
  std::vector<std::int32_t> last_page_len_;
  TableDeviceArrays arrays_;
};

}  // namespace
}  // namespace kvbm::detail

namespace kvbm {

std::unique_ptr<DeviceBlockTable> make_host_device_block_table(const DeviceBlockTableConfig& config) {
  const DeviceBlockTableConfig normalized = detail::normalize_table_config(config);
  return std::make_unique<DeviceBlockTable>(
      normalized, std::make_unique<detail::HostTableBackend>(normalized));
}

}  // namespace kvbm
