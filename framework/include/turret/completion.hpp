#pragma once
// completion<R>: the callback that a request started without a coroutine completes (service.hpp, "Optional
// extension: callback start"). A move-only, type-erased `void(result<R>)`, invoked at most once.
//
// Callables up to `buffer_size` bytes (nothrow-movable) are stored inline; larger ones (a layer's callback wrapping
// the completion it was given) take one heap allocation. Destroying a completion that was never invoked destroys
// the callable without invoking it: the contract of try_start (exactly one invocation) is the caller's to keep.
#include <cstddef>
#include <memory>
#include <new>
#include <turret/result.hpp>
#include <type_traits>
#include <utility>

namespace turret {

template <class R>
class completion {
 public:
  static constexpr std::size_t buffer_size = 48;

  completion() noexcept = default;

  template <class F, class D = std::decay_t<F>>
  requires(!std::is_same_v<D, completion> && std::is_invocable_v<D&, result<R>>) explicit completion(F&& f) {
    if constexpr (inline_v<D>) {
      ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
    } else {
      ::new (static_cast<void*>(buf_)) D*(new D(std::forward<F>(f)));
    }
    vt_ = &vtable_for<D>;
  }

  completion(completion&& o) noexcept : vt_(std::exchange(o.vt_, nullptr)) {
    if (vt_) vt_->move(buf_, o.buf_);
  }
  completion& operator=(completion&& o) noexcept {
    if (this != &o) {
      reset();
      if (o.vt_) {
        o.vt_->move(buf_, o.buf_);
        vt_ = std::exchange(o.vt_, nullptr);
      }
    }
    return *this;
  }
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;
  ~completion() { reset(); }

  explicit operator bool() const noexcept { return vt_ != nullptr; }

  /// The held callable if it is a D, else nullptr: how a layer takes back what it wrapped when the inner service
  /// declined to start (try_start left the completion untouched).
  template <class D>
  requires std::is_invocable_v<D&, result<R>> D* target() noexcept {
    return vt_ == &vtable_for<D> ? &get<D>(buf_) : nullptr;
  }

  /// Invokes the callable with `r` and leaves this completion empty. Must not be empty.
  void operator()(result<R> r) {
    const vtable* vt = std::exchange(vt_, nullptr);
    vt->invoke(buf_, std::move(r));
  }

 private:
  template <class D>
  static constexpr bool inline_v = sizeof(D) <= buffer_size &&
                                   alignof(D) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<D>;

  struct vtable {
    void (*invoke)(unsigned char* p, result<R>&& r);  // invokes, then destroys
    void (*move)(unsigned char* dst, unsigned char* src) noexcept;
    void (*destroy)(unsigned char* p) noexcept;
  };

  template <class D>
  static D& get(unsigned char* p) noexcept {
    if constexpr (inline_v<D>) {
      return *std::launder(reinterpret_cast<D*>(p));
    } else {
      return **std::launder(reinterpret_cast<D**>(p));
    }
  }
  template <class D>
  static void destroy_impl(unsigned char* p) noexcept {
    if constexpr (inline_v<D>) {
      std::launder(reinterpret_cast<D*>(p))->~D();
    } else {
      delete *std::launder(reinterpret_cast<D**>(p));
    }
  }
  template <class D>
  static void invoke_impl(unsigned char* p, result<R>&& r) {
    // Taken out of the buffer first: the callable may destroy what owns this completion.
    if constexpr (inline_v<D>) {
      D f(std::move(get<D>(p)));
      destroy_impl<D>(p);
      f(std::move(r));
    } else {
      std::unique_ptr<D> f(*std::launder(reinterpret_cast<D**>(p)));
      (*f)(std::move(r));
    }
  }
  template <class D>
  static void move_impl(unsigned char* dst, unsigned char* src) noexcept {
    if constexpr (inline_v<D>) {
      D* s = std::launder(reinterpret_cast<D*>(src));
      ::new (static_cast<void*>(dst)) D(std::move(*s));
      s->~D();
    } else {
      ::new (static_cast<void*>(dst)) D*(*std::launder(reinterpret_cast<D**>(src)));
    }
  }
  template <class D>
  static constexpr vtable vtable_for{&invoke_impl<D>, &move_impl<D>, &destroy_impl<D>};

  void reset() noexcept {
    if (vt_) std::exchange(vt_, nullptr)->destroy(buf_);
  }

  alignas(std::max_align_t) unsigned char buf_[buffer_size];
  const vtable* vt_ = nullptr;
};

}  // namespace turret
