#pragma once
// Type erasure at configuration boundaries: any_permit, any_service, any_layer.
//
// Static pipelines (service_builder) have no erasure cost. A pipeline built from config (layer_registry) cannot have
// a static type, so each configured layer is an any_layer, and the services between them are any_service. Erase only
// there: inside one middleware keep the concrete types.
//
// Cost of one erased hop: one virtual call and one coroutine frame for `ready` and for `call` (frames come from Asio's
// per-thread recycling allocator). Permits are stored in any_permit's small buffer, so they do not allocate unless
// larger than `any_permit::buffer_size` bytes (or not nothrow-movable).
#include <turret/layer.hpp>
#include <turret/service.hpp>

#include <boost/system/errc.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace turret {

/// A move-only, type-erased permit with small-buffer storage. Destroying it destroys the held permit (releasing
/// its reservation: RAII is preserved through erasure).
class any_permit {
 public:
  static constexpr std::size_t buffer_size = 64;
  static constexpr std::size_t buffer_align = alignof(std::max_align_t);

  /// True when P is stored inline (no heap allocation).
  template <class P>
  static constexpr bool stored_inline =
      sizeof(P) <= buffer_size && alignof(P) <= buffer_align && std::is_nothrow_move_constructible_v<P>;

  any_permit() noexcept = default;

  /// Holds `p`. Explicit, and never from an error code (so that result<any_permit> stays unambiguous).
  template <class P, class D = std::decay_t<P>>
    requires(!std::is_same_v<D, any_permit> && !std::is_constructible_v<boost::system::error_code, D>)
  explicit any_permit(P&& p) {
    if constexpr (stored_inline<D>) {
      ::new (static_cast<void*>(buf_)) D(std::forward<P>(p));
    } else {
      ::new (static_cast<void*>(buf_)) D*(new D(std::forward<P>(p)));
    }
    vt_ = &vtable_for<D>;
  }

  any_permit(any_permit&& other) noexcept : vt_(other.vt_) {
    if (vt_) {
      vt_->move(buf_, other.buf_);
      other.vt_ = nullptr;
    }
  }
  any_permit& operator=(any_permit&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.vt_) {
        other.vt_->move(buf_, other.buf_);
        vt_ = other.vt_;
        other.vt_ = nullptr;
      }
    }
    return *this;
  }
  any_permit(const any_permit&) = delete;
  any_permit& operator=(const any_permit&) = delete;
  ~any_permit() { reset(); }

  /// Destroys the held permit (releasing its reservation).
  void reset() noexcept {
    if (vt_) {
      vt_->destroy(buf_);
      vt_ = nullptr;
    }
  }

  bool has_value() const noexcept { return vt_ != nullptr; }

  /// The held permit if it is a P, else nullptr.
  template <class P>
  P* get() noexcept {
    if (vt_ != &vtable_for<P>) return nullptr;
    if constexpr (stored_inline<P>) {
      return std::launder(reinterpret_cast<P*>(buf_));
    } else {
      return *std::launder(reinterpret_cast<P**>(buf_));
    }
  }
  template <class P>
  bool holds() const noexcept {
    return vt_ == &vtable_for<P>;
  }

 private:
  struct vtable {
    void (*move)(unsigned char* dst, unsigned char* src) noexcept;  // move-construct into dst, destroy src
    void (*destroy)(unsigned char* p) noexcept;
  };

  template <class P>
  static void move_impl(unsigned char* dst, unsigned char* src) noexcept {
    if constexpr (stored_inline<P>) {
      P* s = std::launder(reinterpret_cast<P*>(src));
      ::new (static_cast<void*>(dst)) P(std::move(*s));
      s->~P();
    } else {
      ::new (static_cast<void*>(dst)) P*(*std::launder(reinterpret_cast<P**>(src)));
    }
  }
  template <class P>
  static void destroy_impl(unsigned char* p) noexcept {
    if constexpr (stored_inline<P>) {
      std::launder(reinterpret_cast<P*>(p))->~P();
    } else {
      delete *std::launder(reinterpret_cast<P**>(p));
    }
  }
  template <class P>
  static constexpr vtable vtable_for{&move_impl<P>, &destroy_impl<P>};

  alignas(buffer_align) unsigned char buf_[buffer_size];
  const vtable* vt_ = nullptr;
};

/// A type-erased service from Request to result<Response>. Copies share one underlying service (shared_ptr), as
/// the Service contract requires (copying never duplicates limiter state). An empty (default-constructed)
/// any_service must not be called.
template <class Request, class Response>
class any_service {
 public:
  using request_type = Request;
  using response_type = Response;
  using permit_type = any_permit;

  any_service() = default;

  template <class S, class D = std::decay_t<S>>
    requires(!std::is_same_v<D, any_service> && service<D, Request> &&
             std::is_convertible_v<typename D::response_type, Response>)
  explicit any_service(S&& s) : impl_(std::make_shared<model<D>>(std::forward<S>(s))) {}

  awaitable<result<any_permit>> ready(request_context& ctx) { return impl_->ready(ctx); }
  /// `permit` must come from this service's ready(); a foreign permit fails with errc::invalid_argument.
  awaitable<result<Response>> call(any_permit permit, Request& req) { return impl_->call(std::move(permit), req); }

  /// Synchronous fast path (see immediate_service in service.hpp): nullopt = would suspend, use ready() + call().
  /// Returns nullopt at once when some service of the erased chain has no fast path.
  std::optional<result<Response>> try_call_now(Request& req) {
    if (!impl_->immediate) return std::nullopt;
    return impl_->try_call_now(req);
  }
  /// True when the whole erased chain implements try_call_now (it may still return nullopt at run time).
  bool supports_immediate() const noexcept { return impl_ && impl_->immediate; }

  /// Non-suspending readiness probe (see probing_service in service.hpp): nullopt = ready() would wait. Returns
  /// nullopt at once when the erased service has no try_ready.
  std::optional<result<any_permit>> try_ready(request_context& ctx) {
    if (!impl_->probing) return std::nullopt;
    return impl_->try_ready(ctx);
  }
  /// True when the erased service implements try_ready (it may still return nullopt at run time).
  bool supports_try_ready() const noexcept { return impl_ && impl_->probing; }

  /// Callback start (see startable_service in service.hpp): false at once when some service of the erased chain
  /// has no try_start.
  bool try_start(Request& req, completion<Response>& done) {
    if (!impl_->startable) return false;
    return impl_->try_start(req, done);
  }
  /// True when the whole erased chain implements try_start (it may still decline at run time).
  bool supports_start() const noexcept { return impl_ && impl_->startable; }

  explicit operator bool() const noexcept { return impl_ != nullptr; }

  /// The erased service if it is an S (for tests and introspection), else nullptr.
  template <class S>
  S* target() noexcept {
    auto* m = dynamic_cast<model<S>*>(impl_.get());
    return m ? &m->svc : nullptr;
  }

 private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual awaitable<result<any_permit>> ready(request_context& ctx) = 0;
    virtual awaitable<result<Response>> call(any_permit permit, Request& req) = 0;
    virtual std::optional<result<Response>> try_call_now(Request& req) = 0;
    virtual std::optional<result<any_permit>> try_ready(request_context& ctx) = 0;
    virtual bool try_start(Request& req, completion<Response>& done) = 0;
    bool immediate = false;
    bool probing = false;
    bool startable = false;
  };

  template <class S>
  struct model final : concept_t {
    template <class A>
    explicit model(A&& a) : svc(std::forward<A>(a)) {
      if constexpr (immediate_service<S, Request>) {
        if constexpr (requires { svc.supports_immediate(); }) {
          this->immediate = svc.supports_immediate();  // an erased inner chain
        } else {
          this->immediate = true;
        }
      }
      if constexpr (probing_service<S>) this->probing = probe_supported(svc);
      if constexpr (startable_service<S, Request> && std::is_same_v<typename S::response_type, Response>)
        this->startable = start_supported<Request>(svc);
    }

    // Only for a service answering Response itself (a converting completion could not be handed back unused).
    bool try_start(Request& req, completion<Response>& done) override {
      if constexpr (startable_service<S, Request> && std::is_same_v<typename S::response_type, Response>) {
        return svc.try_start(req, done);
      } else {
        return false;
      }
    }

    std::optional<result<any_permit>> try_ready(request_context& ctx) override {
      if constexpr (probing_service<S>) {
        auto p = svc.try_ready(ctx);
        if (!p) return std::nullopt;
        if (!*p) return result<any_permit>(p->error());
        if constexpr (std::is_same_v<typename S::permit_type, any_permit>) {
          return std::move(*p);
        } else {
          return result<any_permit>(any_permit(std::move(**p)));
        }
      } else {
        return std::nullopt;
      }
    }

    std::optional<result<Response>> try_call_now(Request& req) override {
      if constexpr (immediate_service<S, Request>) {
        auto r = svc.try_call_now(req);
        if (!r) return std::nullopt;
        if (!*r) return result<Response>(r->error());
        if constexpr (std::is_same_v<typename S::response_type, Response>) {
          return std::move(*r);
        } else {
          return result<Response>(Response(std::move(**r)));
        }
      } else {
        return std::nullopt;
      }
    }

    awaitable<result<any_permit>> ready(request_context& ctx) override {
      auto p = co_await svc.ready(ctx);
      if (!p) co_return p.error();
      co_return any_permit(std::move(*p));
    }

    // When the erased service answers Response itself, call() returns the inner awaitable as is: no coroutine frame
    // of its own (a request through N erased layers allocates N frames fewer, and keeps fewer alive while it
    // waits). Otherwise (a response to convert) it is a coroutine that converts.
    awaitable<result<Response>> call(any_permit permit, Request& req) override {
      using P = typename S::permit_type;
      if constexpr (std::is_same_v<typename S::response_type, Response>) {
        if constexpr (std::is_same_v<P, any_permit>) {
          return svc.call(std::move(permit), req);
        } else {
          P* p = permit.template get<P>();
          if (!p) return foreign_permit();
          P owned(std::move(*p));
          permit.reset();
          return svc.call(std::move(owned), req);
        }
      } else {
        return call_converting(std::move(permit), req);
      }
    }

    static awaitable<result<Response>> foreign_permit() {
      co_return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    }

    awaitable<result<Response>> call_converting(any_permit permit, Request& req) {
      using P = typename S::permit_type;
      if constexpr (std::is_same_v<P, any_permit>) {  // an erased inner service: its permit is passed as is
        auto r = co_await svc.call(std::move(permit), req);
        if (!r) co_return r.error();
        if constexpr (std::is_same_v<typename S::response_type, Response>) {
          co_return std::move(*r);
        } else {
          co_return Response(std::move(*r));
        }
      }
      P* p = permit.template get<P>();
      if (!p) co_return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
      P owned(std::move(*p));
      permit.reset();
      auto r = co_await svc.call(std::move(owned), req);
      if (!r) co_return r.error();
      if constexpr (std::is_same_v<typename S::response_type, Response>) {
        co_return std::move(*r);
      } else {
        co_return Response(std::move(*r));
      }
    }

    S svc;
  };

  std::shared_ptr<concept_t> impl_;
};

/// Erases a service (deduces the response type).
template <class Request, class S>
any_service<Request, typename std::decay_t<S>::response_type> erase_service(S&& s) {
  return any_service<Request, typename std::decay_t<S>::response_type>(std::forward<S>(s));
}

/// A type-erased layer: any_service -> any_service. Default-constructed = identity. Copies share the layer
/// (layers are immutable configuration).
template <class Request, class Response>
class any_layer {
 public:
  using service_type = any_service<Request, Response>;

  any_layer() = default;

  /// From any layer that can wrap an any_service.
  template <class L, class D = std::decay_t<L>>
    requires(!std::is_same_v<D, any_layer> && layer_for<D, service_type>)
  any_layer(L&& l)  // NOLINT(google-explicit-constructor)
      : fn_(std::make_shared<const std::function<service_type(service_type)>>(
            [l = D(std::forward<L>(l))](service_type inner) { return service_type(l.wrap(std::move(inner))); })) {}

  /// From a function any_service -> any_service.
  static any_layer from_function(std::function<service_type(service_type)> f) {
    any_layer a;
    a.fn_ = std::make_shared<const std::function<service_type(service_type)>>(std::move(f));
    return a;
  }

  service_type wrap(service_type inner) const { return fn_ ? (*fn_)(std::move(inner)) : inner; }

 private:
  std::shared_ptr<const std::function<service_type(service_type)>> fn_;
};

}  // namespace turret
