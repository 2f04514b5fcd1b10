// CUDA backend of DeviceBlockTable: the shared Thrust code (kvbm/detail/block_table_ops.inl) on
// thrust::cuda::par_nosync.on(stream), staging in pinned host memory, cudaMemcpyAsync uploads,
// fences from the caller's EventPool.
#include <thrust/system/cuda/execution_policy.h>

#include <cstdint>
#include <memory>

#include "kvbm/cuda/backends.hpp"
#include "kvbm/detail/table_backend.hpp"

#define KVBM_TABLE_OPS_NS cuda_impl
#include "kvbm/detail/block_table_ops.inl"

namespace kvbm {
namespace {

/// cudaMalloc / cudaMallocHost owner (RAII; frees never throw).
template <class T, bool Pinned>
class CudaBuffer {
 public:
  CudaBuffer() = default;
  explicit CudaBuffer(std::size_t count) : count_{count} {
    if (count == 0) return;
    void* p = nullptr;
    if constexpr (Pinned) {
      KVBM_CUDA_TRY(cudaMallocHost(&p, count * sizeof(T)));
    } else {
      KVBM_CUDA_TRY(cudaMalloc(&p, count * sizeof(T)));
    }
    data_ = static_cast<T*>(p);
  }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  ~CudaBuffer() {
    if (data_ == nullptr) return;
    if constexpr (Pinned) {
      KVBM_CUDA_ASSERT_OK(cudaFreeHost(data_));
    } else {
      KVBM_CUDA_ASSERT_OK(cudaFree(data_));
    }
  }
  [[nodiscard]] T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return count_ * sizeof(T); }

 private:
  T* data_{nullptr};
  std::size_t count_{0};
};

/// Thrust temporary storage (CUB's scan scratch) from the stream-ordered allocator: no implicit
/// device synchronisation (plain cudaMalloc has one), freed in stream order after the algorithm.
struct StreamOrderedAllocator {
  using value_type = char;
  cudaStream_t stream;
  char* allocate(std::ptrdiff_t bytes) {
    void* p = nullptr;
    KVBM_CUDA_TRY(cudaMallocAsync(&p, static_cast<std::size_t>(bytes), stream));
    return static_cast<char*>(p);
  }
  void deallocate(char* p, std::size_t) noexcept { KVBM_CUDA_ASSERT_OK(cudaFreeAsync(p, stream)); }
};

class CudaStaging final : public detail::StagingBuffer {
 public:
  explicit CudaStaging(std::size_t bytes)
      : host_{bytes}, device_{(bytes + sizeof(std::int32_t) - 1) / sizeof(std::int32_t)} {}
  std::byte* host() noexcept override { return host_.data(); }
  std::size_t capacity() const noexcept override { return host_.size(); }
  std::int32_t* device() const noexcept { return device_.data(); }

 private:
  CudaBuffer<std::byte, true> host_;
  CudaBuffer<std::int32_t, false> device_;
};

class CudaTableBackend final : public detail::TableBackend {
 public:
  CudaTableBackend(const DeviceBlockTableConfig& c, EventPool& events)
      : config_{c},
        events_{&events},
        table_{detail::table_extents(c).table},
        slot_mapping_{detail::table_extents(c).slot_mapping},
        indptr_{detail::table_extents(c).indptr},
        indices_{detail::table_extents(c).indices},
        last_page_len_{detail::table_extents(c).last_page_len},
        arrays_{detail::table_device_arrays(c, table_.data(), slot_mapping_.data(), indptr_.data(),
                                            indices_.data(), last_page_len_.data())} {
    // All-ones bytes are -1 in int32 and int64.
    KVBM_CUDA_TRY(cudaMemset(table_.data(), 0xff, table_.bytes()));
    if (slot_mapping_.size() > 0) {
      KVBM_CUDA_TRY(cudaMemset(slot_mapping_.data(), 0xff, slot_mapping_.bytes()));
    }
    KVBM_CUDA_TRY(cudaMemset(indptr_.data(), 0, indptr_.bytes()));
    KVBM_CUDA_TRY(cudaMemset(indices_.data(), 0xff, indices_.bytes()));
    KVBM_CUDA_TRY(cudaMemset(last_page_len_.data(), 0, last_page_len_.bytes()));
    KVBM_CUDA_TRY(cudaDeviceSynchronize());  // visible to every stream before first use
  }

  StreamRef::Kind stream_kind() const noexcept override { return StreamRef::Kind::Cuda; }

  std::unique_ptr<detail::StagingBuffer> make_staging(std::size_t bytes) override {
    return std::make_unique<CudaStaging>(bytes);
  }

  Fence upload_cells(StreamRef stream, detail::StagingBuffer& staging, std::size_t count) override {
    auto& buffer = static_cast<CudaStaging&>(staging);
    const cudaStream_t s = handle(stream);
    KVBM_CUDA_TRY(cudaMemcpyAsync(buffer.device(), buffer.host(),
                                  detail::staging::cell_upload_ints(count) * sizeof(std::int32_t),
                                  cudaMemcpyHostToDevice, s));
    detail::cuda_impl::scatter_cells(thrust::cuda::par_nosync.on(s), buffer.device(),
                                     static_cast<std::int32_t>(count), table_.data());
    KVBM_CUDA_TRY(cudaGetLastError());
    return events_->record(CudaStreamView{s});
  }

  Fence upload_table(StreamRef stream, detail::StagingBuffer& staging) override {
    auto& buffer = static_cast<CudaStaging&>(staging);
    const cudaStream_t s = handle(stream);
    KVBM_CUDA_TRY(cudaMemcpyAsync(table_.data(), buffer.host(), table_.bytes(),
                                  cudaMemcpyHostToDevice, s));
    return events_->record(CudaStreamView{s});
  }

  Fence build_layouts(StreamRef stream, detail::StagingBuffer& staging, std::size_t count) override {
    auto& buffer = static_cast<CudaStaging&>(staging);
    const cudaStream_t s = handle(stream);
    if (count > 0) {
      KVBM_CUDA_TRY(cudaMemcpyAsync(
          buffer.device(), buffer.host(),
          detail::staging::batch_input_ints(count) * sizeof(std::int32_t), cudaMemcpyHostToDevice,
          s));
    }
    StreamOrderedAllocator allocator{s};
    detail::cuda_impl::build_layouts(thrust::cuda::par_nosync(allocator).on(s),
                                     detail::cuda_impl::layout_args(
                                         arrays_, buffer.device(), static_cast<std::int32_t>(count)));
    KVBM_CUDA_TRY(cudaGetLastError());
    return events_->record(CudaStreamView{s});
  }

  Fence download_table(StreamRef stream, std::int32_t* out) override {
    const cudaStream_t s = handle(stream);
    KVBM_CUDA_TRY(cudaMemcpyAsync(out, table_.data(), table_.bytes(), cudaMemcpyDeviceToHost, s));
    return events_->record(CudaStreamView{s});
  }

  Fence download_layouts(StreamRef stream, BatchLayoutsHost& out) override {
    const cudaStream_t s = handle(stream);
    if (slot_mapping_.size() > 0) {
      KVBM_CUDA_TRY(cudaMemcpyAsync(out.slot_mapping.data(), slot_mapping_.data(),
                                    slot_mapping_.bytes(), cudaMemcpyDeviceToHost, s));
    }
    KVBM_CUDA_TRY(cudaMemcpyAsync(out.kv_indptr.data(), indptr_.data(), indptr_.bytes(),
                                  cudaMemcpyDeviceToHost, s));
    KVBM_CUDA_TRY(cudaMemcpyAsync(out.kv_indices.data(), indices_.data(), indices_.bytes(),
                                  cudaMemcpyDeviceToHost, s));
    KVBM_CUDA_TRY(cudaMemcpyAsync(out.kv_last_page_len.data(), last_page_len_.data(),
                                  last_page_len_.bytes(), cudaMemcpyDeviceToHost, s));
    return events_->record(CudaStreamView{s});
  }

  DeviceTableView view() const noexcept override {
    return {table_.data(),        config_.max_requests, config_.max_blocks_per_request,
            slot_mapping_.data(), indptr_.data(),       indices_.data(),
            last_page_len_.data()};
  }

 private:
  static cudaStream_t handle(StreamRef stream) noexcept {
    return static_cast<cudaStream_t>(stream.cuda_handle());
  }

  DeviceBlockTableConfig config_;
  EventPool* events_;
  CudaBuffer<std::int32_t, false> table_;
  CudaBuffer<std::int64_t, false> slot_mapping_;
  CudaBuffer<std::int32_t, false> indptr_;
  CudaBuffer<std::int32_t, false> indices_;
  CudaBuffer<std::int32_t, false> last_page_len_;
  detail::TableDeviceArrays arrays_;
};

}  // namespace

std::unique_ptr<DeviceBlockTable> make_cuda_device_block_table(const DeviceBlockTableConfig& config,
                                                               EventPool& events) {
  const DeviceBlockTableConfig normalized = detail::normalize_table_config(config);
  return std::make_unique<DeviceBlockTable>(
      normalized, std::make_unique<CudaTableBackend>(normalized, events));
}

}  // namespace kvbm
