#include <turret/plugin.hpp>

#include <cxxabi.h>
#include <dlfcn.h>

#include <cstdlib>
#include <exception>
#include <memory>

namespace turret {

std::string plugin_context::demangled_name(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(t.name());
}

loaded_plugin load_plugin(const std::string& path, plugin_context& ctx) {
  // RTLD_NOW: a symbol the host does not define is an error here, not a crash at the first request that needs it.
  // RTLD_LOCAL: one plugin's symbols do not resolve another's (each binds to the host and its own libraries only).
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    throw plugin_error("cannot load plugin " + path + ": " + (err ? err : "dlopen failed"));
  }
  // From here on the handle is kept even on error: closing it could run the plugin's static destructors, and a
  // process that fails to start exits anyway.
  ::dlerror();
  void* sym = ::dlsym(handle, TURRET_PLUGIN_ENTRY_SYMBOL);
  if (!sym)
    throw plugin_error(path + " is not a turret plugin: it exports no " TURRET_PLUGIN_ENTRY_SYMBOL
                       " (define it with TURRET_PLUGIN(name, version, register_fn) from <turret/plugin.hpp>)");
  const auto entry = reinterpret_cast<turret_plugin_entry_fn>(sym);
  const turret_plugin_info* info = entry();
  if (!info) throw plugin_error(path + ": " TURRET_PLUGIN_ENTRY_SYMBOL "() returned no plugin description");
  if (info->abi_version != plugin_abi_version)
    throw plugin_error(path + " was built for plugin ABI " + std::to_string(info->abi_version) +
                       ", this program loads plugin ABI " + std::to_string(plugin_abi_version) +
                       " (rebuild the plugin against this version of turret)");
  if (!info->register_plugin) throw plugin_error(path + ": the plugin description has no register function");

  loaded_plugin out;
  out.path = path;
  out.name = info->name ? info->name : "";
  out.version = info->version ? info->version : "";
  out.handle = handle;
  ctx.set_path(path);
  try {
    info->register_plugin(ctx);
  } catch (const std::exception& e) {
    throw plugin_error("plugin " + path + " (" + out.name + "): " + e.what());
  } catch (...) {
    throw plugin_error("plugin " + path + " (" + out.name + "): its register function threw a non-standard exception");
  }
  return out;
}

}  // namespace turret
