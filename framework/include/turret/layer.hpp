#pragma once
// Layers: decorators of services, stacked at compile time.
//
// A Layer is an object with `wrap(inner)` that takes a service by value and returns a new service wrapping it:
//
// ```
// struct my_layer {
//   template <class S> my_service<S> wrap(S inner) const;   // must not modify the layer (const)
// };
// ```
//
// A layer is the configuration of a middleware (e.g. timeout_layer holds the duration and clock); the service it
// produces holds the per-instance shared state (e.g. the concurrency limit's semaphore) behind a pointer, so that
// copying a wrapped service shares state rather than duplicating it. Calling `wrap` twice yields two independent
// instances (two separate limits).
//
// Every wrapper service exposes its inner service through `inner()` (const and non-const).
//
// # Builder order
// `service_builder{}.layer(a).layer(b).layer(c).service(core)` yields `a.wrap(b.wrap(c.wrap(core)))`:
// the FIRST layer added is the OUTERMOST, i.e. the first to see a request and the last to see its response (as
// tower's ServiceBuilder). The builder stores layers by value in a tuple; the result type is fully static (no
// allocation, no virtual call).
#include <turret/service.hpp>

#include <tuple>
#include <type_traits>
#include <utility>

namespace turret {

/// L can wrap a service of type S.
template <class L, class S>
concept layer_for = requires(const L& l, S s) {
  { l.wrap(std::move(s)) };
};

/// The service type `L` produces around `S`.
template <class L, class S>
using layered_t = decltype(std::declval<const L&>().wrap(std::declval<S>()));

/// The layer that wraps nothing (returns the service unchanged).
struct identity_layer {
  template <class S>
  S wrap(S inner) const {
    return inner;
  }
};

/// Two layers as one: `stack_layer{outer, inner}.wrap(s) == outer.wrap(inner.wrap(s))`.
template <class Outer, class Inner>
struct stack_layer {
  Outer outer;
  Inner inner;

  template <class S>
    requires layer_for<Inner, S> && layer_for<Outer, layered_t<Inner, S>>
  auto wrap(S s) const {
    return outer.wrap(inner.wrap(std::move(s)));
  }
};

/// A layer from a callable `S -> service` (handy in tests and for one-off adapters).
template <class F>
struct layer_fn {
  F fn;
  template <class S>
  auto wrap(S s) const {
    return fn(std::move(s));
  }
};
template <class F>
layer_fn(F) -> layer_fn<F>;

/// Compile-time builder. The first layer added is the outermost.
template <class... Layers>
class service_builder {
 public:
  service_builder() = default;
  explicit service_builder(std::tuple<Layers...> layers) : layers_(std::move(layers)) {}

  /// Adds `l` INSIDE every layer added so far.
  template <class L>
  service_builder<Layers..., std::decay_t<L>> layer(L&& l) && {
    return service_builder<Layers..., std::decay_t<L>>(
        std::tuple_cat(std::move(layers_), std::tuple<std::decay_t<L>>(std::forward<L>(l))));
  }
  template <class L>
  service_builder<Layers..., std::decay_t<L>> layer(L&& l) const& {
    return service_builder<Layers..., std::decay_t<L>>(
        std::tuple_cat(layers_, std::tuple<std::decay_t<L>>(std::forward<L>(l))));
  }

  /// Wraps `core` in every layer (last added innermost) and returns the resulting service.
  template <class S>
  auto service(S core) const {
    return apply<0>(std::move(core));
  }

  /// The builder as one layer (usable inside another builder).
  template <class S>
  auto wrap(S core) const {
    return service(std::move(core));
  }

  const std::tuple<Layers...>& layers() const noexcept { return layers_; }

 private:
  template <std::size_t I, class S>
  auto apply(S s) const {
    if constexpr (I == sizeof...(Layers)) {
      return s;
    } else {
      return std::get<I>(layers_).wrap(apply<I + 1>(std::move(s)));
    }
  }

  std::tuple<Layers...> layers_;
};

service_builder() -> service_builder<>;

}  // namespace turret
