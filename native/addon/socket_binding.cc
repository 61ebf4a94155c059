// Peer credentials of a connected Unix socket (SO_PEERCRED): Node's net module does not expose
// them, and serve() must check a client's uid the way the agent does.
#include <sys/socket.h>
#include <sys/types.h>

#include "bindings.h"

namespace allocscope {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return info.Env().Null();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("pid", static_cast<double>(cred.pid));
  out.Set("uid", static_cast<double>(cred.uid));
  out.Set("gid", static_cast<double>(cred.gid));
  return out;
}

}  // namespace allocscope
