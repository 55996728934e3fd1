#pragma once
// Plugins: shared objects that a program built on turret (turretd) loads at start-up to add layers, front ends or
// anything else its registries take, selectable by name in its configuration like the built-in ones.
//
// # The contract
// A plugin exports one C function, `turret_plugin_entry`, returning a `turret_plugin_info`: the plugin ABI version
// it was compiled against, its name and version, and its register function. The host (load_plugin below) dlopen()s
// the file, finds the entry point, refuses a plugin whose ABI version is not its own, and only then calls
// `register_plugin(ctx)`, which registers into the registries the host offers through the plugin_context:
//
// ```
// #include <turret/kv/plugin.hpp>     // a key-value plugin for turretd: kv::layer_registry_type, kv::frontend_registry
//
// void register_hello(turret::plugin_context& ctx) {
//   ctx.get<turret::kv::layer_registry_type>().add("hello", make_hello_layer);   // `- layer: hello` in a pipeline
// }
// TURRET_PLUGIN("hello", "1.0", register_hello)
// ```
//
// The register function runs once per process, at start-up, before any pipeline is built; it may throw (a duplicate
// name, a registry the host does not offer): the host reports the error with the plugin's path and does not start.
//
// # One process, one copy of everything
// A plugin is linked against NO turret library (CMake target turret::plugin: headers, compile definitions and the
// shared third-party libraries only). Every turret symbol it uses stays undefined in the .so and is bound at dlopen to
// the host's own definition: turretd is linked with its symbols exported (-rdynamic) and with the whole framework,
// middleware and key-value contract libraries in it, so whatever a plugin calls is there. Hence one
// metrics::default_registry(), one set of error categories, one logger registry and one layer registry per process.
// Public headers keep no mutable state of their own (no function-local statics in inline functions, no inline
// variables that are not constants), and what C++ does emit per object file (template statics, vague-linkage
// objects) binds to the host's copy too, because the host exports it and is searched first.
//
// # ABI
// A plugin shares C++ types with the host (registries, layer_context, kv::request, std::string...): it must be built
// with the same turret headers, compiler and standard library, and the compile definitions turret::plugin carries.
// plugin_abi_version changes whenever a type a plugin can see changes incompatibly; turret_plugin_info's layout never
// changes (fields are only ever appended), so a host can always read the version of any plugin and name the mismatch.
//
// A loaded plugin is never unloaded (its code may back objects that live until exit).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

/// The plugin ABI of these headers (see "ABI" above).
#define TURRET_PLUGIN_ABI_VERSION 1u
/// The name of the entry point a plugin exports.
#define TURRET_PLUGIN_ENTRY_SYMBOL "turret_plugin_entry"

namespace turret {

inline constexpr std::uint32_t plugin_abi_version = TURRET_PLUGIN_ABI_VERSION;

/// A plugin that cannot be loaded: a missing file, a missing entry point, another ABI version, or an error thrown by
/// its register function. what() names the path.
class plugin_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a plugin's register function is given: the registries the host offers, by type. turretd offers
/// `turret::layer_registry<kv::request, kv::response>` (the layers of its pipelines) and `kv::frontend_registry`
/// (its listener protocols): see <turret/kv/plugin.hpp>.
class plugin_context {
 public:
  /// Offers `registry` to plugins as a T (the host, before loading). It must outlive the loading.
  template <class T>
  void provide(T& registry) {
    for (auto& [type, ptr] : offered_) {
      if (*type == typeid(T)) {
        ptr = &registry;
        return;
      }
    }
    offered_.emplace_back(&typeid(T), &registry);
  }

  /// The host's T, or nullptr when the host offers none. (Types are compared by type_info, which compares their
  /// names, so the plugin's typeid(T) and the host's are equal.)
  template <class T>
  T* find() const noexcept {
    for (const auto& [type, ptr] : offered_)
      if (*type == typeid(T)) return static_cast<T*>(ptr);
    return nullptr;
  }

  /// The host's T; throws plugin_error when the host offers none.
  template <class T>
  T& get() const {
    if (T* r = find<T>()) return *r;
    throw plugin_error("this host offers no " + demangled_name(typeid(T)) + " to plugins");
  }

  /// The file being loaded, as the host resolved it (set by load_plugin()).
  const std::string& path() const noexcept { return path_; }
  void set_path(std::string p) { path_ = std::move(p); }

 private:
  static std::string demangled_name(const std::type_info& t);

  std::vector<std::pair<const std::type_info*, void*>> offered_;
  std::string path_;
};

/// A plugin loaded into this process.
struct loaded_plugin {
  std::string path;     ///< as given to load_plugin()
  std::string name;     ///< turret_plugin_info::name
  std::string version;  ///< turret_plugin_info::version
  void* handle = nullptr;  ///< dlopen's handle (never closed)
};

/// Loads the plugin at `path` (dlopen with RTLD_NOW: every undefined symbol must resolve now), checks its entry
/// point and ABI version, and calls its register function with `ctx` (ctx.path() is set to `path`). Throws
/// plugin_error naming `path`: "cannot load plugin PATH: <dlerror>", "PATH is not a turret plugin: no symbol
/// turret_plugin_entry", "PATH was built for plugin ABI N, this program loads ABI M", "plugin PATH: <what the register
/// function threw>".
loaded_plugin load_plugin(const std::string& path, plugin_context& ctx);

}  // namespace turret

extern "C" {

/// What a plugin's entry point returns. Its layout never changes (fields are only appended).
struct turret_plugin_info {
  std::uint32_t abi_version;  ///< TURRET_PLUGIN_ABI_VERSION of the headers the plugin was compiled with
  const char* name;           ///< the plugin's name, for logs
  const char* version;        ///< the plugin's version, for logs
  void (*register_plugin)(turret::plugin_context& ctx);  ///< registers what the plugin provides; may throw
};

/// The entry point's type: `extern "C" const turret_plugin_info* turret_plugin_entry()`.
typedef const turret_plugin_info* (*turret_plugin_entry_fn)();
}

/// Defines the entry point of a plugin: `TURRET_PLUGIN("hello", "1.0", register_hello)` at namespace scope, once
/// per plugin, with `void register_hello(turret::plugin_context&)`.
#define TURRET_PLUGIN(NAME, VERSION, REGISTER_FN)                                                        \
  extern "C" __attribute__((visibility("default"))) const turret_plugin_info* turret_plugin_entry() {   \
    static const turret_plugin_info info{TURRET_PLUGIN_ABI_VERSION, NAME, VERSION, &REGISTER_FN};         \
    return &info;                                                                                        \
  }
