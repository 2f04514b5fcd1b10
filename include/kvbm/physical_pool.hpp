// kvbm/physical_pool.hpp — where a manager's KV bytes live: PhysicalPool.
//
// kvbm never owns KV bytes. A PhysicalPool describes one manager's slots: base pointer, number of
// blocks, bytes between consecutive blocks (stride) and bytes per block to copy (<= stride), and
// the memory kind. The runtime address of slot (manager_id, block_id) is base + block_id * stride.
// Trivially copyable value; the memory must outlive every copy that uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kvbm/errors.hpp"
#include "kvbm/types.hpp"

namespace kvbm {

enum class MemoryKind : std::uint8_t {
  Device,      ///< GPU memory (CUDA backend only)
  PinnedHost,  ///< page-locked host memory (cudaMallocHost / cudaHostRegister)
  Host,        ///< plain pageable host memory
};

class PhysicalPool {
 public:
  /// `block_bytes` 0 means the whole stride. Throws ConfigError on an inconsistent description.
  PhysicalPool(ManagerId manager_id, void* base, BlockId num_blocks, std::size_t block_stride,
               MemoryKind kind, std::size_t block_bytes = 0)
      : manager_id_{manager_id}, base_{static_cast<std::byte*>(base)}, num_blocks_{num_blocks},
        block_stride_{block_stride}, block_bytes_{block_bytes == 0 ? block_stride : block_bytes},
        kind_{kind} {
    if (base == nullptr || num_blocks == 0 || block_stride == 0) {
      throw ConfigError("PhysicalPool: base, num_blocks and block_stride must be non-zero");
    }
    if (block_bytes_ > block_stride_) {
      throw ConfigError("PhysicalPool: block_bytes (" + std::to_string(block_bytes_) +
                        ") larger than block_stride (" + std::to_string(block_stride_) + ")");
    }
  }

  [[nodiscard]] ManagerId manager_id() const noexcept { return manager_id_; }
  [[nodiscard]] std::byte* base() const noexcept { return base_; }
  [[nodiscard]] BlockId num_blocks() const noexcept { return num_blocks_; }
  [[nodiscard]] std::size_t block_stride() const noexcept { return block_stride_; }
  [[nodiscard]] std::size_t block_bytes() const noexcept { return block_bytes_; }
  [[nodiscard]] MemoryKind kind() const noexcept { return kind_; }
  /// Blocks are back to back: a run of consecutive ids is one contiguous range.
  [[nodiscard]] bool dense() const noexcept { return block_bytes_ == block_stride_; }
  /// Address of a slot; throws std::out_of_range for an id outside the pool.
  [[nodiscard]] std::byte* address(BlockId id) const {
    if (id >= num_blocks_) {
      throw std::out_of_range("PhysicalPool: block " + std::to_string(id) + " outside [0, " +
                              std::to_string(num_blocks_) + ")");
    }
    return base_ + static_cast<std::size_t>(id) * block_stride_;
  }

 private:
  ManagerId manager_id_;
  std::byte* base_;
  BlockId num_blocks_;
  std::size_t block_stride_;
  std::size_t block_bytes_;
  MemoryKind kind_;
};

}  // namespace kvbm
