#pragma once
// layer_state_store: the state of stateful layers (rate-limit buckets, a circuit breaker, a retry budget, a
// concurrency limit's semaphore, outlier statistics), kept by key so that a configuration reload carries it over to
// the new pipeline for every layer whose configuration did not change.
//
// A stateful layer's factory does not create its state itself: it asks the context for it,
// ```
//   auto bucket = ctx.shared_state<token_bucket>(entry, [&] { return std::make_shared<token_bucket>(cfg); });
// ```
// and every service the layer wraps uses that state. The key is the pipeline's name, the entry's key path
// ("pipelines.api[2]") and the entry's canonical YAML text: an entry that is unchanged, at the same place, in the
// same pipeline, gets the same state object after a reload; any change to the entry (a new rate, a moved entry, a
// renamed pipeline) gets fresh state.
//
// # Generations
// turretd builds each configuration into a new store whose `previous` is the store of the configuration being
// served. A lookup that misses in the new store takes the previous store's object (shared, not moved: if the new
// configuration is rejected, the old one keeps its state untouched) and keeps it. Once the new configuration serves,
// turretd drops the old store: state that no new entry claimed lives on only as long as requests in flight on the
// old pipeline hold it (shared_ptr), then goes.
//
// # Threads
// Thread-safe (a mutex): factories run on the thread that loads the configuration, while requests run elsewhere;
// lookups never happen on the request path.
#include <memory>
#include <mutex>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>

namespace turret {

class layer_state_store {
 public:
  layer_state_store() = default;
  /// A new generation that carries over `previous`'s entries on demand (previous may be null).
  explicit layer_state_store(std::shared_ptr<const layer_state_store> previous) : previous_(std::move(previous)) {}
  layer_state_store(const layer_state_store&) = delete;
  layer_state_store& operator=(const layer_state_store&) = delete;

  /// The state object of type T under `key`: this generation's, else the previous generation's (kept from now on),
  /// else `make()` (a callable returning std::shared_ptr<T>). An object of another type under the same key is never
  /// returned (a new one is made and replaces it in this generation).
  template <class T, class Make>
  std::shared_ptr<T> get_or_create(const std::string& key, Make&& make) {
    std::lock_guard lock(mutex_);
    const std::type_index type(typeid(T));
    if (auto it = entries_.find(key); it != entries_.end() && it->second.type == type)
      return std::static_pointer_cast<T>(it->second.object);
    if (previous_) {
      if (auto found = previous_->find(key, type)) {
        entries_.insert_or_assign(key, entry{type, found});
        return std::static_pointer_cast<T>(found);
      }
    }
    std::shared_ptr<T> made = std::forward<Make>(make)();
    entries_.insert_or_assign(key, entry{type, made});
    return made;
  }

  /// Number of entries of this generation (tests).
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

  /// Forgets the previous generation (what was not claimed by now is no longer carried over).
  void drop_previous() {
    std::lock_guard lock(mutex_);
    previous_.reset();
  }

 private:
  struct entry {
    std::type_index type;
    std::shared_ptr<void> object;
  };

  std::shared_ptr<void> find(const std::string& key, std::type_index type) const {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.type != type) return nullptr;
    return it->second.object;
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;
  std::shared_ptr<const layer_state_store> previous_;
};

}  // namespace turret
