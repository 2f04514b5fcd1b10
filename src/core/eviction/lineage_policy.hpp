// src/eviction/lineage_policy.hpp — leaf-first eviction over the prefix tree of cached blocks.
//
// Cached blocks form a forest keyed by positional lineage: a node is (position, fragment) where
// the fragment is the block's chained hash truncated to the width its children store as their
// parent fragment, so a child at position p finds its parent under (p-1, child.parent_fragment()).
// Only leaves (cached blocks without cached or placeholder descendants) are evictable, so a cached
// parent always outlives its cached descendants and chains drain tail-first.
//  - A child cached before its parent hangs under a Ghost placeholder; the parent's later insert
//    promotes the ghost.
//  - A cache hit does not take the block's node out of the tree: the node turns Held (the slot
//    is in use, not evictable) and stays indexed, so the release that caches the block again
//    flips it back to cached in place (no node allocation, no index insert or erase). A Held
//    node with cached descendants holds their subtree like a ghost; a childless one is unlinked
//    from its parent (so the parent is a leaf again, as if the node had gone) and relinks when
//    it is cached again. The node goes when the slot's tenancy ends (forget(), or the slot is
//    cached under another key), and a ghost lookup may take over another slot's Held node.
//  - Removing a node prunes childless ghosts (and unlinks childless Held nodes) upwards
//    iteratively (no recursion: chains may be tens of thousands deep) and re-exposes the
//    nearest cached ancestor as a leaf.
//  - Two different hashes with the same (position, fragment) (a different parent, or a fragment
//    collision) never share a node: the later one gets its own unindexed node, always a leaf, so
//    eviction of one never removes or corrupts the other. Full hashes stay in the store.
// Leaf order (LineageEviction):
//  - Tick: by the tick the block got when it became cached; a parent re-exposed as a leaf keeps
//    its original tick (so a chain's root follows its own leaf). Leaves that arrive newer than
//    every listed one (most: a block cached now) join an intrusive list in tick order, O(1);
//    the others (re-exposed parents) go to an indexed binary heap, O(log n); the victim is the
//    older of the two fronts.
//  - Fifo: by the time the node became a leaf; a re-exposed parent joins the tail. Intrusive
//    list: O(1).
// Memory: a node slab reserved for 2 x capacity nodes (ghosts may grow it) of 32 bytes each (the
// node's (position, fragment) is kept packed in its 64-bit index key), a (position, fragment)
// index of 4-byte node numbers (found through their nodes' keys) sized for 1.5 x capacity (cached
// and Held nodes are at most one per slot), and per-slot arrays (node, tick, leaf order); the
// full hash is not kept (the store has it). No allocation per operation in steady state.
// Exception safety: growth past the reserved slab or index allocates inside insert(), which the
// store calls from release paths that cannot throw; a pool churning far more ghosts than
// 2 x capacity under memory exhaustion terminates there (not reached by the fault tests).
// Complexity per operation: O(1) expected plus the nodes unlinked or pruned on the way up
// (a hit on the leaf of a Held chain unlinks the chain's childless Held nodes once; each is
// relinked once when cached again) plus O(log n) for the Tick heap.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "eviction/lru_policy.hpp"

namespace kvbm::detail {

/// Index key of a lineage node: its position and the fragment its children store for it.
struct LineageKey {
  std::uint64_t fragment;
  std::uint32_t position;
  friend bool operator==(const LineageKey&, const LineageKey&) noexcept = default;

  /// The key as one word, laid out like a child's hash at position + 1 would store it:
  /// [mode : 2][position : P][fragment : F] with 2 + P + F = 64, so the packing is exact.
  [[nodiscard]] constexpr std::uint64_t packed() const noexcept {
    const unsigned mode = SequenceHash::mode_for(position + 1);
    const unsigned f = SequenceHash::fragment_bits(mode);
    return (std::uint64_t{mode} << 62) | (std::uint64_t{position} << f) |
           (fragment & ((std::uint64_t{1} << f) - 1));
  }
  /// Inverse of packed().
  [[nodiscard]] static constexpr LineageKey unpack(std::uint64_t packed) noexcept {
    const unsigned f = SequenceHash::fragment_bits(static_cast<unsigned>(packed >> 62));
    const std::uint64_t body = packed & ((std::uint64_t{1} << 62) - 1);
    return {body & ((std::uint64_t{1} << f) - 1), static_cast<std::uint32_t>(body >> f)};
  }
};

/// Cheap FxHash-style hasher (multiply by an odd 64-bit constant), folded so the low bits a
/// swiss table uses depend on the whole key.
struct LineageKeyHash {
  std::size_t operator()(std::uint64_t packed) const noexcept {
    const std::uint64_t h = packed * 0x517cc1b727220a95ull;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }
  std::size_t operator()(const LineageKey& key) const noexcept { return (*this)(key.packed()); }
};

/// Min-heap of slot ids keyed by a 64-bit tick, with an id -> heap position map so any id can be
/// removed in O(log n). Sized for `capacity` ids; never allocates afterwards.
class TickHeap {
 public:
  explicit TickHeap(std::size_t capacity);
  void push(BlockId id, std::uint64_t tick) noexcept;
  void erase(BlockId id) noexcept;
  /// kInvalidBlockId when empty.
  [[nodiscard]] BlockId top() const noexcept {
    return heap_.empty() ? kInvalidBlockId : heap_.front().id;
  }
  [[nodiscard]] bool contains(BlockId id) const noexcept { return where_[id] != kNowhere; }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }

 private:
  static constexpr std::uint32_t kNowhere = 0xFFFF'FFFFu;
  struct Entry {
    std::uint64_t tick;
    BlockId id;
  };
  void place(std::size_t at, Entry entry) noexcept {
    heap_[at] = entry;
    where_[entry.id] = static_cast<std::uint32_t>(at);
  }
  void sift_up(std::size_t at) noexcept;
  void sift_down(std::size_t at) noexcept;

  std::vector<Entry> heap_;
  std::vector<std::uint32_t> where_;
};

class LineagePolicy final : public InactivePolicy {
 public:
  LineagePolicy(std::size_t capacity, LineageEviction order);
  ~LineagePolicy() override;

  /// Throws std::logic_error if `id` is already present.
  void insert(BlockId id, const SequenceHash& hash) override;
  void insert_many(std::span<const BlockId> ids,
                   FunctionRef<const SequenceHash&(BlockId)> hash_of) override {
    for (const BlockId id : ids) insert(id, hash_of(id));
  }
  /// Throws std::logic_error if `id` is not present or holds a different hash. The node stays
  /// (Held) until the slot is cached again or forgotten.
  void remove(BlockId id, const SequenceHash& hash) override;
  /// Drops the Held node of slot `id` (turning it into a ghost while it holds a subtree).
  void forget(BlockId id) noexcept override;
  std::size_t evict(std::span<BlockId> out) override;
  [[nodiscard]] std::size_t size() const noexcept override { return size_; }
  [[nodiscard]] bool contains(BlockId id) const noexcept override {
    return id < node_of_.size() && node_of_[id] != kNil &&
           nodes_[node_of_[id]].state == NodeState::Real;
  }
  [[nodiscard]] const char* name() const noexcept override {
    return order_ == LineageEviction::Tick ? "lineage-tick" : "lineage-fifo";
  }
  [[nodiscard]] std::unique_ptr<InactivePolicy> clone() const override;

  // ---- diagnostics (tests, benchmarks) ----
  [[nodiscard]] LineageEviction order() const noexcept { return order_; }
  /// Whether `id` is cached and currently evictable (a leaf).
  [[nodiscard]] bool is_leaf(BlockId id) const noexcept;
  [[nodiscard]] std::size_t leaf_count() const noexcept;
  /// Nodes in the tree that hold cached blocks in place: cached + ghost_count(). O(slab).
  [[nodiscard]] std::size_t node_count() const noexcept { return size_ + ghost_count(); }
  /// Placeholders: ghosts plus Held nodes that hold cached descendants. O(slab).
  [[nodiscard]] std::size_t ghost_count() const noexcept;
  /// Nodes of blocks in use that kept their place since their hit (Held). O(slab).
  [[nodiscard]] std::size_t held_count() const noexcept;
  /// Nodes ever created in the slab (live + recycled); grows only past its high-water mark.
  [[nodiscard]] std::size_t slab_size() const noexcept { return nodes_.size(); }
  /// The id that would be evicted next (kInvalidBlockId when empty).
  [[nodiscard]] BlockId next_victim() const noexcept;
  /// O(n) consistency check of tree, index, counts and leaf order; throws std::logic_error.
  void check_invariants() const;

 private:
  static constexpr std::uint32_t kNil = 0xFFFF'FFFFu;
  enum class NodeState : std::uint8_t { Free, Ghost, Held, Real };
  struct Node {
    std::uint64_t key = 0;  // LineageKey::packed(): position and fragment
    std::uint32_t parent = kNil;
    std::uint32_t first_child = kNil;
    std::uint32_t next_sibling = kNil;  // also the free-list link
    std::uint32_t prev_sibling = kNil;  // unlinked Held node: its last parent (a hint)
    BlockId block = kInvalidBlockId;    // the slot while Real (cached) or Held (in use)
    NodeState state = NodeState::Free;
    bool indexed = false;               // reachable through the (position, fragment) index
  };
  static_assert(sizeof(Node) == 32, "nodes are packed to 32 bytes (memory per cached block)");
  struct Index;
  LineagePolicy(const LineagePolicy& other);  // deep copy, for clone()

  std::uint32_t alloc_node(std::uint64_t key, bool indexed);
  [[nodiscard]] static std::uint32_t position_of(const Node& node) noexcept {
    return LineageKey::unpack(node.key).position;
  }
  void free_node(std::uint32_t n) noexcept;
  void attach(std::uint32_t child, std::uint32_t parent) noexcept;
  void detach(std::uint32_t child) noexcept;
  /// Links non-root `n` under its parent, keyed `parent_key` (found, or a new ghost). Returns the parent's slot when the
  /// parent was a cached leaf and no longer is (the caller takes it out of the leaf order),
  /// else kInvalidBlockId.
  [[nodiscard]] BlockId link_to_parent(std::uint32_t n, std::uint64_t parent_key);
  /// The slow part of link_to_parent: unlinks `n` from a parent with another key, then finds
  /// the parent through the index or makes a ghost for it.
  std::uint32_t find_parent(std::uint32_t n, std::uint64_t parent_key);
  /// Cached slot `id` leaves the leaf order: its node turns `to` (Held on a hit, Ghost when
  /// evicted) and settles.
  void uncache(BlockId id, NodeState to) noexcept;
  /// The Held node `n` loses its slot: a ghost while it holds a subtree, else pruned.
  void drop_held(std::uint32_t n) noexcept;
  /// `n` just lost a child or its block: re-expose it as a leaf, or prune it (and any childless
  /// ghost ancestors) when it is a childless ghost, or unlink it when it is a childless Held
  /// node. Iterative.
  void settle(std::uint32_t n) noexcept;
  void leaf_added(BlockId id) noexcept;
  void leaf_removed(BlockId id) noexcept;
  void leaf_replaced(BlockId old_id, BlockId new_id) noexcept;

  LineageEviction order_;
  std::vector<Node> nodes_;
  std::uint32_t free_head_ = kNil;
  std::size_t live_nodes_ = 0;
  std::unique_ptr<Index> index_;
  std::vector<std::uint32_t> node_of_;   // slot id -> node (Real or Held), else kNil
  std::vector<std::uint64_t> tick_of_;   // slot id -> tick at which it became cached
  std::uint64_t next_tick_ = 1;
  IdList tick_run_;                      // LineageEviction::Tick: leaves in tick order
  TickHeap tick_leaves_;                 // LineageEviction::Tick: leaves that arrived out of it
  IdList fifo_leaves_;                   // LineageEviction::Fifo
  std::size_t size_ = 0;                 // Real nodes
};

}  // namespace kvbm::detail
