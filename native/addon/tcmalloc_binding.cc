// gperftools tcmalloc: numeric properties, ReleaseFreeMemory, GetStats text.
#include <string>
#include <vector>

#include "bindings.h"

extern "C" {
#include "../probe/tcmalloc_probe.h"
}

namespace allocscope {

Napi::Value TcmallocProperty(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  size_t value = 0;
  if (asp_tc_property(name.c_str(), &value) != 1) return info.Env().Null();
  return Napi::Number::New(info.Env(), static_cast<double>(value));
}

Napi::Value TcmallocReleaseFreeMemory(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), asp_tc_release_free_memory() == 0);
}

Napi::Value TcmallocStatsText(const Napi::CallbackInfo& info) {
  // GetStats output is 2-5 KB (limits.md §3); 64 KiB leaves room for per-size-class detail.
  std::vector<char> buf(64 * 1024);
  if (asp_tc_stats_text(buf.data(), static_cast<int>(buf.size())) != 0) return info.Env().Null();
  return Napi::String::New(info.Env(), buf.data());
}

}  // namespace allocscope
