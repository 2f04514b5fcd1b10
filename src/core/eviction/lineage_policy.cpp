// Lineage eviction: leaf-first over the prefix tree, ghost placeholders, iterative pruning.
#include "eviction/lineage_policy.hpp"

#include <absl/container/flat_hash_set.h>

#include <cassert>
#include <stdexcept>
#include <string>

namespace kvbm::detail {

// The small tree and leaf-order steps are inlined into insert/remove (measured: out of line,
// their calls were a fifth of a revive-and-release cycle).
#define KVBM_LINEAGE_INLINE [[gnu::always_inline]] inline

namespace {
/// A block's node key and its parent's node key (0 for a root), computed together.
struct NodeKeys {
  std::uint64_t self;
  std::uint64_t parent;
  std::uint32_t position;
};
NodeKeys keys_of_any(const SequenceHash& hash) noexcept {
  const std::uint32_t position = hash.position();
  return {LineageKey{hash.fragment_for_child_position(position + 1), position}.packed(),
          position == 0 ? 0 : LineageKey{hash.parent_fragment(), position - 1}.packed(), position};
}
[[gnu::always_inline]] inline NodeKeys keys_of(const SequenceHash& hash) noexcept {
  // Positions 0..254 (block and child both in mode 0, the usual case) straight from the bits:
  // hash = [mode 0:2][position:8][current:64][parent fragment:54], and both keys are
  // [0:2][position:8][fragment:54] (the block's current hash, resp. the parent fragment).
  constexpr std::uint64_t kFragment = (std::uint64_t{1} << 54) - 1;
  const std::uint64_t hi = hash.high();
  const std::uint64_t lo = hash.low();
  const auto position = static_cast<std::uint32_t>(hi >> 54);  // mode 0: the top bits are 0
  if (position >= 255) return keys_of_any(hash);                // mode 1/2, or the 255 edge
  const std::uint64_t current_low = ((hi << 10) | (lo >> 54)) & kFragment;
  const NodeKeys keys{(std::uint64_t{position} << 54) | current_low,
                      position == 0 ? 0 : (std::uint64_t{position - 1} << 54) | (lo & kFragment),
                      position};
  assert(keys.self == keys_of_any(hash).self && keys.parent == keys_of_any(hash).parent);
  return keys;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// TickHeap

TickHeap::TickHeap(std::size_t capacity) : where_(capacity, kNowhere) { heap_.reserve(capacity); }

void TickHeap::push(BlockId id, std::uint64_t tick) noexcept {
  heap_.push_back(Entry{tick, id});  // within the reserved capacity: one entry per slot id
  where_[id] = static_cast<std::uint32_t>(heap_.size() - 1);
  sift_up(heap_.size() - 1);
}

void TickHeap::erase(BlockId id) noexcept {
  const std::size_t at = where_[id];
  where_[id] = kNowhere;
  const Entry last = heap_.back();
  heap_.pop_back();
  if (at == heap_.size()) return;  // it was the last entry
  place(at, last);
  if (at > 0 && last.tick < heap_[(at - 1) / 2].tick) {
    sift_up(at);
  } else if (2 * at + 1 < heap_.size()) {
    sift_down(at);
  }
}

void TickHeap::sift_up(std::size_t at) noexcept {
  const Entry entry = heap_[at];
  while (at > 0) {
    const std::size_t parent = (at - 1) / 2;
    if (heap_[parent].tick <= entry.tick) break;
    place(at, heap_[parent]);
    at = parent;
  }
  place(at, entry);
}

void TickHeap::sift_down(std::size_t at) noexcept {
  const Entry entry = heap_[at];
  const std::size_t n = heap_.size();
  while (true) {
    std::size_t child = 2 * at + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].tick < heap_[child].tick) ++child;
    if (entry.tick <= heap_[child].tick) break;
    place(at, heap_[child]);
    at = child;
  }
  place(at, entry);
}

// ---------------------------------------------------------------------------------------------
// LineagePolicy

struct LineagePolicy::Index {
  // The index holds node numbers (4 bytes a slot) and finds them by their node's packed key,
  // which the node keeps: no second copy of the 8-byte key next to each entry. The functors
  // reach the slab through the vector, so the slab may reallocate.
  struct KeyOf {
    using is_transparent = void;
    const std::vector<Node>* nodes;
    std::size_t operator()(std::uint32_t n) const noexcept { return LineageKeyHash{}((*nodes)[n].key); }
    std::size_t operator()(std::uint64_t key) const noexcept { return LineageKeyHash{}(key); }
  };
  struct SameKey {
    using is_transparent = void;
    const std::vector<Node>* nodes;
    bool operator()(std::uint32_t a, std::uint32_t b) const noexcept { return a == b; }
    bool operator()(std::uint32_t n, std::uint64_t key) const noexcept { return (*nodes)[n].key == key; }
    bool operator()(std::uint64_t key, std::uint32_t n) const noexcept { return (*nodes)[n].key == key; }
  };
  // Sized by the constructor, never by reserve(): this absl release corrupts a table whose
  // reserve() fails to allocate, while a failed constructor just throws.
  Index(std::size_t slots, const std::vector<Node>* nodes)
      : map(slots, KeyOf{nodes}, SameKey{nodes}) {}
  absl::flat_hash_set<std::uint32_t, KeyOf, SameKey> map;  // indexed nodes, by packed key
};

LineagePolicy::LineagePolicy(std::size_t capacity, LineageEviction order)
    : order_{order},
      index_{std::make_unique<Index>((capacity + capacity / 2) * 8 / 7 + 1, &nodes_)},
      node_of_(capacity, kNil),
      tick_of_(capacity, 0),
      tick_run_{order == LineageEviction::Tick ? capacity : 0},
      tick_leaves_{order == LineageEviction::Tick ? capacity : 0},
      fifo_leaves_{order == LineageEviction::Fifo ? capacity : 0} {
  // Cached blocks plus as many ghosts: reserved, committed only as the slab grows into it.
  nodes_.reserve(2 * capacity);
}

LineagePolicy::~LineagePolicy() = default;

LineagePolicy::LineagePolicy(const LineagePolicy& other)
    : order_{other.order_},
      nodes_{other.nodes_},
      free_head_{other.free_head_},
      live_nodes_{other.live_nodes_},
      index_{std::make_unique<Index>(other.index_->map.capacity(), &nodes_)},
      node_of_{other.node_of_},
      tick_of_{other.tick_of_},
      next_tick_{other.next_tick_},
      tick_run_{other.tick_run_},
      tick_leaves_{other.tick_leaves_},
      fifo_leaves_{other.fifo_leaves_},
      size_{other.size_} {
  for (const std::uint32_t n : other.index_->map) index_->map.insert(n);
}

std::unique_ptr<InactivePolicy> LineagePolicy::clone() const {
  return std::unique_ptr<InactivePolicy>(new LineagePolicy(*this));
}

std::uint32_t LineagePolicy::alloc_node(std::uint64_t key, bool indexed) {
  std::uint32_t n;
  if (free_head_ != kNil) {
    n = free_head_;
    free_head_ = nodes_[n].next_sibling;
  } else {
    if (nodes_.size() >= kNil) throw std::length_error("lineage policy: node slab exhausted");
    n = static_cast<std::uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& node = nodes_[n];
  node = Node{};
  node.key = key;
  node.state = NodeState::Ghost;
  node.indexed = indexed;
  ++live_nodes_;
  return n;
}

void LineagePolicy::free_node(std::uint32_t n) noexcept {
  Node& node = nodes_[n];
  if (node.indexed) index_->map.erase(node.key);
  node = Node{};
  node.next_sibling = free_head_;
  free_head_ = n;
  --live_nodes_;
}

KVBM_LINEAGE_INLINE void LineagePolicy::attach(std::uint32_t child, std::uint32_t parent) noexcept {
  Node& c = nodes_[child];
  Node& p = nodes_[parent];
  c.parent = parent;
  c.prev_sibling = kNil;
  c.next_sibling = p.first_child;
  if (p.first_child != kNil) nodes_[p.first_child].prev_sibling = child;
  p.first_child = child;
}

KVBM_LINEAGE_INLINE void LineagePolicy::detach(std::uint32_t child) noexcept {
  Node& c = nodes_[child];
  if (c.prev_sibling != kNil) {
    nodes_[c.prev_sibling].next_sibling = c.next_sibling;
  } else {
    nodes_[c.parent].first_child = c.next_sibling;
  }
  if (c.next_sibling != kNil) nodes_[c.next_sibling].prev_sibling = c.prev_sibling;
  c.parent = kNil;
  c.prev_sibling = kNil;
  c.next_sibling = kNil;
}

KVBM_LINEAGE_INLINE void LineagePolicy::leaf_added(BlockId id) noexcept {
  if (order_ == LineageEviction::Tick) {
    // The eviction-heavy case is all list: a heap's pop sifted the last entry through every
    // level (a sixth of lineage eviction-heavy in perf).
    if (tick_run_.empty() || tick_of_[id] > tick_of_[tick_run_.back()]) {
      tick_run_.push_back(id);
    } else {
      tick_leaves_.push(id, tick_of_[id]);
    }
  } else {
    fifo_leaves_.push_back(id);
  }
}

KVBM_LINEAGE_INLINE void LineagePolicy::leaf_removed(BlockId id) noexcept {
  if (order_ == LineageEviction::Tick) {
    if (tick_run_.contains(id)) {
      tick_run_.unlink(id);
    } else {
      tick_leaves_.erase(id);
    }
  } else {
    fifo_leaves_.unlink(id);
  }
}

KVBM_LINEAGE_INLINE void LineagePolicy::leaf_replaced(BlockId old_id, BlockId new_id) noexcept {
  if (order_ == LineageEviction::Tick) {
    // A chain released root-first: the parent was the newest leaf, and its child, newer still,
    // takes its place at the tail.
    if (tick_run_.back() == old_id) {
      tick_run_.replace(old_id, new_id);
    } else {
      leaf_removed(old_id);
      leaf_added(new_id);
    }
  } else {
    fifo_leaves_.unlink(old_id);
    fifo_leaves_.push_back(new_id);
  }
}

void LineagePolicy::insert(BlockId id, const SequenceHash& hash) {
  if (id >= node_of_.size()) {
    throw std::logic_error("lineage policy: block " + std::to_string(id) + " out of range");
  }
  if (contains(id)) {
    throw std::logic_error("lineage policy: block " + std::to_string(id) + " already exists");
  }
  const NodeKeys keys = keys_of(hash);
  const std::uint64_t packed = keys.self;

  std::uint32_t n = kNil;
  if (const std::uint32_t mine = node_of_[id]; mine != kNil) {
    // The slot's own Held node (a hit, now released): cached again in place. An unindexed
    // (collision) node or another key's node goes, and the block is looked up like a new one.
    if (nodes_[mine].key == packed && nodes_[mine].indexed) {
      n = mine;
    } else {
      drop_held(mine);
    }
  }
  if (n == kNil) {
    auto& map = index_->map;
    if (auto it = map.find(packed); it == map.end()) {
      n = alloc_node(packed, /*indexed=*/true);
      map.insert(n);
    } else if (const Node& found = nodes_[*it]; found.state == NodeState::Ghost) {
      n = *it;  // a placeholder becomes cached
    } else if (found.state == NodeState::Held) {
      // Another slot's block in use holds the key (a different parent or a fragment collision;
      // the store never caches one hash twice): this block takes the node over, as it would
      // take over a ghost, and the other slot looks its key up again when it is released.
      n = *it;
      node_of_[found.block] = kNil;
    } else {
      // The key is held by another cached block: a different parent or a fragment collision
      // (the store's map tells full hashes apart). Give this one a node of its own that lookups
      // never reach: it stays a leaf, so it is evictable and never disturbs the other's subtree.
      n = alloc_node(packed, /*indexed=*/false);
    }
  }

  Node& node = nodes_[n];
  node.state = NodeState::Real;
  node.block = id;
  node_of_[id] = n;
  tick_of_[id] = next_tick_++;
  ++size_;

  const BlockId displaced = keys.position == 0 ? kInvalidBlockId : link_to_parent(n, keys.parent);
  if (nodes_[n].first_child == kNil) {
    if (displaced != kInvalidBlockId) {
      leaf_replaced(displaced, id);  // a chain released root-first: the child takes the leaf place
    } else {
      leaf_added(id);
    }
  } else if (displaced != kInvalidBlockId) {
    leaf_removed(displaced);
  }
}

std::uint32_t LineagePolicy::find_parent(std::uint32_t n, std::uint64_t parent_key) {
  if (const std::uint32_t current = nodes_[n].parent; current != kNil) {
    // A promoted ghost (or Held node) that was left by a different hash with the same
    // (position, fragment): move it under this hash's parent and let the old parent settle.
    detach(n);
    settle(current);
  }
  auto& map = index_->map;
  if (auto it = map.find(parent_key); it != map.end()) return *it;
  // Child cached before its parent: hold its place with a ghost.
  const std::uint32_t parent = alloc_node(parent_key, /*indexed=*/true);
  map.insert(parent);
  return parent;
}

KVBM_LINEAGE_INLINE BlockId LineagePolicy::link_to_parent(std::uint32_t n,
                                                          std::uint64_t parent_key) {
  std::uint32_t parent;
  if (const std::uint32_t current = nodes_[n].parent;
      current != kNil && nodes_[current].key == parent_key) {
    return kInvalidBlockId;  // still linked under the right parent (it held a subtree)
  } else if (const std::uint32_t hint = nodes_[n].prev_sibling;  // an unlinked node's hint
             current == kNil && hint != kNil && nodes_[hint].indexed &&
             nodes_[hint].state != NodeState::Free && nodes_[hint].key == parent_key) {
    // The hint is the index's node for parent_key (the index holds every indexed node, one per
    // key): no probe.
    parent = hint;
  } else {
    parent = find_parent(n, parent_key);
  }
  BlockId displaced = kInvalidBlockId;
  if (const Node& p = nodes_[parent]; p.state == NodeState::Real && p.first_child == kNil) {
    displaced = p.block;
  }
  attach(n, parent);
  return displaced;
}

void LineagePolicy::remove(BlockId id, const SequenceHash& hash) {
  if (!contains(id)) {
    throw std::logic_error("lineage policy: block " + std::to_string(id) + " not found");
  }
  // The node keeps no full hash; its key and its parent's key must both match `hash`.
  const NodeKeys keys = keys_of(hash);
  const Node& node = nodes_[node_of_[id]];
  bool same = node.key == keys.self;
  if (same && keys.position > 0 && node.parent != kNil) same = nodes_[node.parent].key == keys.parent;
  if (!same) {
    throw std::logic_error("lineage policy: block " + std::to_string(id) +
                           " holds a different sequence hash");
  }
  uncache(id, NodeState::Held);
}

void LineagePolicy::forget(BlockId id) noexcept {
  if (id >= node_of_.size()) return;
  const std::uint32_t n = node_of_[id];
  if (n == kNil) return;
  if (nodes_[n].state == NodeState::Real) uncache(id, NodeState::Held);  // not a store path
  drop_held(n);
}

KVBM_LINEAGE_INLINE void LineagePolicy::uncache(BlockId id, NodeState to) noexcept {
  const std::uint32_t n = node_of_[id];
  Node& node = nodes_[n];
  node.state = to;
  if (to != NodeState::Held) {
    node.block = kInvalidBlockId;
    node_of_[id] = kNil;
  }
  tick_of_[id] = 0;
  --size_;
  if (node.first_child != kNil) return;  // an interior block: its node holds the subtree
  leaf_removed(id);
  settle(n);
}

void LineagePolicy::drop_held(std::uint32_t n) noexcept {
  Node& node = nodes_[n];
  node_of_[node.block] = kNil;
  node.block = kInvalidBlockId;
  node.state = NodeState::Ghost;
  settle(n);
}

void LineagePolicy::settle(std::uint32_t n) noexcept {
  while (n != kNil) {
    Node& node = nodes_[n];
    if (node.first_child != kNil) return;  // still holds a subtree together
    if (node.state == NodeState::Real) {   // a cached ancestor re-exposed as a leaf
      leaf_added(node.block);
      return;
    }
    // A childless ghost is pruned, a childless Held node unlinked (kept for its slot's next
    // release); either way the parent lost a child.
    const std::uint32_t parent = node.parent;
    if (parent != kNil) {
      detach(n);
      // An unlinked node has no siblings: a Held one keeps its parent there as a hint for its
      // relink (checked against the parent's key before use, so it may go stale).
      if (node.state == NodeState::Held) node.prev_sibling = parent;
    }
    if (node.state == NodeState::Ghost) free_node(n);
    n = parent;
  }
}

std::size_t LineagePolicy::evict(std::span<BlockId> out) {
  std::size_t count = 0;
  while (count < out.size()) {
    const BlockId victim = next_victim();
    if (victim == kInvalidBlockId) break;
    uncache(victim, NodeState::Ghost);  // pruned; may expose the parent as the next leaf
    out[count++] = victim;
  }
  return count;
}

BlockId LineagePolicy::next_victim() const noexcept {
  if (order_ != LineageEviction::Tick) return fifo_leaves_.front();
  const BlockId listed = tick_run_.front();
  const BlockId heaped = tick_leaves_.top();
  if (listed == kInvalidBlockId) return heaped;
  if (heaped == kInvalidBlockId) return listed;
  return tick_of_[listed] < tick_of_[heaped] ? listed : heaped;
}

bool LineagePolicy::is_leaf(BlockId id) const noexcept {
  if (!contains(id)) return false;
  return order_ == LineageEviction::Tick ? tick_run_.contains(id) || tick_leaves_.contains(id)
                                         : fifo_leaves_.contains(id);
}

std::size_t LineagePolicy::ghost_count() const noexcept {
  std::size_t count = 0;
  for (const Node& node : nodes_) {
    count += node.state == NodeState::Ghost ||
             (node.state == NodeState::Held && node.first_child != kNil);
  }
  return count;
}

std::size_t LineagePolicy::held_count() const noexcept {
  std::size_t count = 0;
  for (const Node& node : nodes_) count += node.state == NodeState::Held;
  return count;
}

std::size_t LineagePolicy::leaf_count() const noexcept {
  return order_ == LineageEviction::Tick ? tick_run_.size() + tick_leaves_.size()
                                         : fifo_leaves_.size();
}

void LineagePolicy::check_invariants() const {
  const auto fail = [](const std::string& what) {
    throw std::logic_error("lineage policy invariant: " + what);
  };
  std::size_t live = 0;
  std::size_t cached = 0;
  std::size_t leaves = 0;
  std::size_t indexed = 0;
  for (std::uint32_t n = 0; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    if (node.state == NodeState::Free) continue;
    ++live;
    if (node.indexed) {
      ++indexed;
      auto it = index_->map.find(node.key);
      if (it == index_->map.end() || *it != n) fail("indexed node missing from index");
    }
    if (node.state == NodeState::Ghost && node.first_child == kNil) fail("childless ghost");
    if (node.state == NodeState::Ghost && node.block != kInvalidBlockId) fail("ghost with a slot");
    if (node.state == NodeState::Held) {
      if (node.block >= node_of_.size() || node_of_[node.block] != n) fail("held node/slot mapping");
      if (node.parent != kNil && node.first_child == kNil) fail("childless held node still linked");
    }
    if (node.state == NodeState::Real) {
      ++cached;
      const BlockId id = node.block;
      if (id >= node_of_.size() || node_of_[id] != n) fail("node/slot mapping broken");
      const bool leaf = node.first_child == kNil;
      if (leaf != is_leaf(id)) fail("leaf order disagrees with the tree");
      leaves += leaf ? 1 : 0;
    }
    if (node.parent != kNil) {
      const Node& p = nodes_[node.parent];
      if (p.state == NodeState::Free) fail("parent is free");
      if (position_of(p) + 1 != position_of(node)) fail("parent position is not position - 1");
      bool found = false;
      for (std::uint32_t c = p.first_child; c != kNil; c = nodes_[c].next_sibling) {
        if (c == n) found = true;
      }
      if (!found) fail("child missing from its parent's child list");
    } else if (node.state == NodeState::Real && position_of(node) > 0) {
      fail("cached non-root without a parent");
    }
    for (std::uint32_t c = node.first_child; c != kNil; c = nodes_[c].next_sibling) {
      if (nodes_[c].parent != n) fail("child list entry with another parent");
    }
  }
  if (live != live_nodes_) fail("live node count");
  if (cached != size_) fail("cached count");
  if (leaves != leaf_count()) fail("leaf count");
  if (indexed != index_->map.size()) fail("index size");
  for (BlockId id = 0; id < node_of_.size(); ++id) {
    if (node_of_[id] == kNil) continue;
    const Node& node = nodes_[node_of_[id]];
    if (node.block != id) fail("slot/node mapping");
    if (node.state != NodeState::Real && node.state != NodeState::Held) fail("slot maps to a ghost");
  }
}

}  // namespace kvbm::detail
