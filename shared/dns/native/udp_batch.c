// A UDP socket that receives and sends in batches (recvmmsg/sendmmsg): one JS call and
// two system calls per batch instead of a JS callback, a buffer allocation and two
// system calls per packet, which is where Node's dgram spends a DNS server's time.
// Only moves bytes: all parsing stays in JavaScript.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BATCH 64
#define SLOT 65536  // the largest UDP payload: no query is ever cut; untouched pages cost no memory

typedef struct {
  uv_poll_t poll;
  int fd;
  int closed;
  int poll_inited;     // the handle is libuv's until uv_close calls back: free s only then
  napi_env env;
  napi_ref self;       // the JS object, kept alive while open
  napi_ref on_batch;   // function(count)
  napi_ref on_error;   // function(err): receiving failed and stopped until resume()
  napi_ref arena_ref;  // Buffer, BATCH * SLOT bytes: received packets
  napi_ref lens_ref;   // Int32Array(BATCH): their lengths, -1 when truncated
  napi_async_context async;
  unsigned char *arena;
  int32_t *lens;
  struct sockaddr_storage from[BATCH];
  struct mmsghdr in[BATCH];
  struct iovec in_iov[BATCH];
  struct mmsghdr out[BATCH];
  struct iovec out_iov[BATCH];
} batch_socket;

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "udp_batch: N-API call failed: " #call); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

// An error shaped like Node's own system errors ("bind EADDRINUSE 0.0.0.0:53", code
// 'EADDRINUSE', errno -98, syscall 'bind'), so callers can test err.code and logs name the
// cause. `err` is a positive errno; libuv's codes, which Node's errno property holds, are
// their negations.
static napi_value errno_error(napi_env env, int err, const char *syscall, const char *where) {
  const char *name = uv_err_name(-err);
  char text[192];
  snprintf(text, sizeof text, where ? "%s %s %s" : "%s %s", syscall, name, where);
  napi_value code, msg, error, errno_value, syscall_value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *where) {
  napi_throw(env, errno_error(env, err, syscall, where));
  return NULL;
}

static batch_socket *unwrap(napi_env env, napi_value obj) {
  batch_socket *s = NULL;
  if (napi_unwrap(env, obj, (void **)&s) != napi_ok || s == NULL || s->closed) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "udp_batch: socket is closed");
    return NULL;
  }
  return s;
}

static void on_closed(uv_handle_t *handle) {
  free(handle->data);
}

// Gives back what construct took, whichever step it reached: the JS references, the fd (at
// once, so the port is free again when close() returns), and the memory (once libuv has let
// go of the handle). uv_close comes before close(fd): it takes the fd out of epoll while that
// number cannot yet belong to another socket.
static void release(napi_env env, batch_socket *s) {
  s->closed = 1;
  napi_ref *refs[] = {&s->self, &s->on_batch, &s->on_error, &s->arena_ref, &s->lens_ref};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    if (*refs[i]) napi_delete_reference(env, *refs[i]);
  }
  if (s->async) napi_async_destroy(env, s->async);
  if (s->poll_inited) uv_close((uv_handle_t *)&s->poll, on_closed);
  close(s->fd);
  if (!s->poll_inited) free(s);
}

// Calls a JS callback from a libuv callback. make_callback runs the microtask and nextTick
// queues afterwards, as for any I/O callback; a throw is an uncaught exception, as there.
static void call_js(batch_socket *s, napi_ref fn_ref, napi_value arg) {
  napi_env env = s->env;
  napi_value self, fn, result;
  napi_get_reference_value(env, s->self, &self);
  napi_get_reference_value(env, fn_ref, &fn);
  if (napi_make_callback(env, s->async, self, fn, 1, &arg, &result) == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
}

// Receiving failed with something other than "nothing to read". The socket may stay
// readable, and polling it again would retry the same failure in a busy loop: stop, and let
// JS resume() after a pause of its choosing.
static void fail(batch_socket *s, int err, const char *syscall) {
  uv_poll_stop(&s->poll);
  napi_handle_scope scope;
  napi_open_handle_scope(s->env, &scope);
  call_js(s, s->on_error, errno_error(s->env, err, syscall, NULL));
  napi_close_handle_scope(s->env, scope);
}

static void reset_in(batch_socket *s, int i) {
  s->in_iov[i].iov_base = s->arena + (size_t)i * SLOT;
  s->in_iov[i].iov_len = SLOT;
  memset(&s->in[i].msg_hdr, 0, sizeof s->in[i].msg_hdr);
  s->in[i].msg_hdr.msg_name = &s->from[i];
  s->in[i].msg_hdr.msg_namelen = sizeof s->from[i];
  s->in[i].msg_hdr.msg_iov = &s->in_iov[i];
  s->in[i].msg_hdr.msg_iovlen = 1;
}

// The pending error that made poll report POLLERR (reading it clears it), else `fallback`.
static int socket_error(int fd, int fallback) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0) return fallback;
  return err;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  batch_socket *s = (batch_socket *)handle->data;
  if (s->closed) return;
  // libuv has already stopped polling and says only UV_EBADF; the socket knows the cause.
  if (status < 0) {
    fail(s, socket_error(s->fd, -status), "poll");
    return;
  }
  napi_env env = s->env;
  // A bounded number of rounds per wake-up, so a flood cannot starve the event loop.
  for (int round = 0; round < 4 && !s->closed; round++) {
    for (int i = 0; i < BATCH; i++) reset_in(s, i);
    int n = recvmmsg(s->fd, s->in, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) {
      fail(s, errno, "recvmmsg");
      return;
    }
    for (int i = 0; i < n; i++) {
      s->lens[i] = (s->in[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->in[i].msg_len;
    }
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value count;
    napi_create_int32(env, n, &count);
    call_js(s, s->on_batch, count);
    napi_close_handle_scope(env, scope);
    if (n < BATCH) return;
  }
}

static int is_function(napi_env env, napi_value v) {
  napi_valuetype type;
  return napi_typeof(env, v, &type) == napi_ok && type == napi_function;
}

// Fills addr from family, address and port; 0 when the address is no IP literal of that family.
static int parse_address(int family, const char *address, int port, struct sockaddr_storage *addr, socklen_t *len) {
  memset(addr, 0, sizeof *addr);
  if (family == 6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    return inet_pton(AF_INET6, address, &a6->sin6_addr) == 1;
  }
  struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
  a4->sin_family = AF_INET;
  a4->sin_port = htons((uint16_t)port);
  *len = sizeof *a4;
  return inet_pton(AF_INET, address, &a4->sin_addr) == 1;
}

// After bind every failure must release the socket: TRY records which call failed and jumps there.
#define TRY(call)          \
  do {                     \
    if ((call) != napi_ok) { \
      failed = #call;      \
      goto fail;           \
    }                      \
  } while (0)

// new BatchSocket(family: 4|6, address: string, port: number, arena: Buffer, lens: Int32Array,
//                 onBatch(count), onError(err))
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  // Every argument is checked before the socket exists, so a bad one costs no fd.
  if (argc < 7 || !is_function(env, argv[5]) || !is_function(env, argv[6])) {
    napi_throw_type_error(env, NULL, "udp_batch: onBatch and onError must be functions");
    return NULL;
  }
  int32_t family, port;
  char address[INET6_ADDRSTRLEN + 1];
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], address, sizeof address, NULL));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  if (family != 4 && family != 6) {
    napi_throw_range_error(env, NULL, "udp_batch: family must be 4 or 6");
    return NULL;
  }
  if (port < 0 || port > 65535) {  // htons would silently bind the port modulo 65536
    napi_throw_range_error(env, "ERR_SOCKET_BAD_PORT", "udp_batch: port must be 0-65535");
    return NULL;
  }
  void *arena;
  size_t arena_len;
  CHECK(napi_get_buffer_info(env, argv[3], &arena, &arena_len));
  napi_typedarray_type lens_type;
  size_t lens_count;
  void *lens;
  CHECK(napi_get_typedarray_info(env, argv[4], &lens_type, &lens_count, &lens, NULL, NULL));
  if (arena_len < (size_t)BATCH * SLOT || lens_type != napi_int32_array || lens_count < BATCH) {
    napi_throw_range_error(env, NULL, "udp_batch: arena or lens too small");
    return NULL;
  }
  struct sockaddr_storage addr;
  socklen_t addr_len;
  // A longer string is cut to fit the buffer; no IP literal is that long, so what is left fails too.
  if (!parse_address(family, address, port, &addr, &addr_len)) return throw_errno(env, EINVAL, "inet_pton", address);
  char where[INET6_ADDRSTRLEN + 8];
  snprintf(where, sizeof where, "%s:%d", address, port);  // as Node writes it, brackets or not

  batch_socket *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_errno(env, ENOMEM, "calloc", NULL);
  s->fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) {
    int err = errno;
    free(s);
    return throw_errno(env, err, "socket", NULL);
  }
  if (bind(s->fd, (struct sockaddr *)&addr, addr_len) < 0) {
    int err = errno;
    release(env, s);
    return throw_errno(env, err, "bind", where);
  }
  s->env = env;
  s->arena = arena;
  s->lens = lens;
  const char *failed = NULL;
  uv_loop_t *loop;
  napi_value resource_name;
  TRY(napi_get_uv_event_loop(env, &loop));
  TRY(napi_create_string_utf8(env, "portolan:udp-batch", NAPI_AUTO_LENGTH, &resource_name));
  TRY(napi_async_init(env, self, resource_name, &s->async));
  TRY(napi_create_reference(env, argv[3], 1, &s->arena_ref));
  TRY(napi_create_reference(env, argv[4], 1, &s->lens_ref));
  TRY(napi_create_reference(env, argv[5], 1, &s->on_batch));
  TRY(napi_create_reference(env, argv[6], 1, &s->on_error));
  TRY(napi_create_reference(env, self, 1, &s->self));
  int rc = uv_poll_init(loop, &s->poll, s->fd);
  if (rc == 0) {
    s->poll.data = s;
    s->poll_inited = 1;
    rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
  if (rc != 0) {
    release(env, s);
    return throw_errno(env, -rc, "uv_poll", NULL);
  }
  // Last, so that a wrapped object is always a working socket.
  TRY(napi_wrap(env, self, s, NULL, NULL, NULL));
  return self;
fail:
  release(env, s);
  char text[160];
  snprintf(text, sizeof text, "udp_batch: N-API call failed: %s", failed);
  napi_throw_error(env, NULL, text);
  return NULL;
}

static napi_value port(napi_env env, napi_callback_info info) {
  napi_value self, result;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  batch_socket *s = unwrap(env, self);
  if (!s) return NULL;
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(s->fd, (struct sockaddr *)&addr, &len) < 0) return throw_errno(env, errno, "getsockname", NULL);
  int p = addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&addr)->sin_port);
  CHECK(napi_create_int32(env, p, &result));
  return result;
}

// Sends `count` messages. What the kernel has no buffer space for is dropped, as a UDP
// server's replies are under overload (the client retries). Each pass sends some, skips one
// or gives up, except for a few retries after a signal: the loop always ends.
static void send_all(batch_socket *s, int count) {
  int done = 0, interrupted = 0;
  while (done < count) {
    int n = sendmmsg(s->fd, s->out + done, count - done, 0);
    if (n > 0) {
      done += n;
    } else if (n == 0) {
      return;  // nothing taken and no error to tell why: retrying could only spin
    } else if (errno == EINTR && interrupted++ < 3) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      return;
    } else {
      done++;  // this destination is unusable (ICMP unreachable, bad port): skip it alone
    }
  }
}

static int fill_out(napi_env env, batch_socket *s, int k, napi_value buffer, struct sockaddr_storage *to, socklen_t to_len) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, buffer, &data, &len) != napi_ok) return 0;
  s->out_iov[k].iov_base = data;
  s->out_iov[k].iov_len = len;
  memset(&s->out[k].msg_hdr, 0, sizeof s->out[k].msg_hdr);
  s->out[k].msg_hdr.msg_name = to;
  s->out[k].msg_hdr.msg_namelen = to_len;
  s->out[k].msg_hdr.msg_iov = &s->out_iov[k];
  s->out[k].msg_hdr.msg_iovlen = 1;
  return 1;
}

// reply(replies: (Buffer|undefined)[], count): replies[i] answers packet i of the batch in hand.
static napi_value reply(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  batch_socket *s = unwrap(env, self);
  if (!s) return NULL;
  int32_t count;
  CHECK(napi_get_value_int32(env, argv[1], &count));
  if (count < 0 || count > BATCH) count = 0;
  int k = 0;
  for (int i = 0; i < count; i++) {
    napi_value item;
    bool is_buffer = false;
    CHECK(napi_get_element(env, argv[0], (uint32_t)i, &item));
    CHECK(napi_is_buffer(env, item, &is_buffer));
    if (!is_buffer) continue;
    k += fill_out(env, s, k, item, &s->from[i], s->in[i].msg_hdr.msg_namelen);
  }
  send_all(s, k);
  return NULL;
}

// peer(i): a copy of packet i's source address, for a reply sent after the batch (sendTo).
static napi_value peer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self, result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  batch_socket *s = unwrap(env, self);
  if (!s) return NULL;
  int32_t i;
  CHECK(napi_get_value_int32(env, argv[0], &i));
  if (i < 0 || i >= BATCH) {
    napi_throw_range_error(env, NULL, "udp_batch: no such packet");
    return NULL;
  }
  CHECK(napi_create_buffer_copy(env, s->in[i].msg_hdr.msg_namelen, &s->from[i], NULL, &result));
  return result;
}

// sendTo(buffer, peer): one reply to an address copied earlier with peer().
static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  batch_socket *s = unwrap(env, self);
  if (!s) return NULL;
  void *to;
  size_t to_len;
  CHECK(napi_get_buffer_info(env, argv[1], &to, &to_len));
  if (to_len > sizeof(struct sockaddr_storage)) {
    napi_throw_range_error(env, NULL, "udp_batch: not an address");
    return NULL;
  }
  struct sockaddr_storage addr;
  memcpy(&addr, to, to_len);
  if (fill_out(env, s, 0, argv[0], &addr, (socklen_t)to_len)) send_all(s, 1);
  return NULL;
}

// resume(): polls again after onError stopped it.
static napi_value resume(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  batch_socket *s = unwrap(env, self);
  if (!s) return NULL;
  int rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (rc != 0) return throw_errno(env, -rc, "uv_poll", NULL);
  return NULL;
}

static napi_value close_socket(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  batch_socket *s = NULL;
  if (napi_remove_wrap(env, self, (void **)&s) != napi_ok || s == NULL) return NULL;
  release(env, s);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"port", NULL, port, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, reply, NULL, NULL, NULL, napi_default, NULL},
      {"peer", NULL, peer, NULL, NULL, NULL, napi_default, NULL},
      {"sendTo", NULL, send_to, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, resume, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_socket, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls, batch, slot;
  CHECK(napi_define_class(env, "BatchSocket", NAPI_AUTO_LENGTH, construct, NULL, sizeof methods / sizeof methods[0], methods, &cls));
  CHECK(napi_create_int32(env, BATCH, &batch));
  CHECK(napi_create_int32(env, SLOT, &slot));
  CHECK(napi_set_named_property(env, exports, "BatchSocket", cls));
  CHECK(napi_set_named_property(env, exports, "BATCH", batch));
  CHECK(napi_set_named_property(env, exports, "SLOT", slot));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
