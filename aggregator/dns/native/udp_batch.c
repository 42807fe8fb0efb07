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
  napi_env env;
  napi_ref self;       // the JS object, kept alive while polling
  napi_ref on_batch;   // function(count)
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

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_value msg, code, error;
  char text[128];
  snprintf(text, sizeof text, "%s %s", syscall, uv_err_name(-err));
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
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

static void reset_in(batch_socket *s, int i) {
  s->in_iov[i].iov_base = s->arena + (size_t)i * SLOT;
  s->in_iov[i].iov_len = SLOT;
  memset(&s->in[i].msg_hdr, 0, sizeof s->in[i].msg_hdr);
  s->in[i].msg_hdr.msg_name = &s->from[i];
  s->in[i].msg_hdr.msg_namelen = sizeof s->from[i];
  s->in[i].msg_hdr.msg_iov = &s->in_iov[i];
  s->in[i].msg_hdr.msg_iovlen = 1;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  batch_socket *s = (batch_socket *)handle->data;
  if (status < 0 || s->closed) return;
  napi_env env = s->env;
  // A bounded number of rounds per wake-up, so a flood cannot starve the event loop.
  for (int round = 0; round < 4 && !s->closed; round++) {
    for (int i = 0; i < BATCH; i++) reset_in(s, i);
    int n = recvmmsg(s->fd, s->in, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    for (int i = 0; i < n; i++) {
      s->lens[i] = (s->in[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->in[i].msg_len;
    }
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value self, fn, count, result;
    napi_get_reference_value(env, s->self, &self);
    napi_get_reference_value(env, s->on_batch, &fn);
    napi_create_int32(env, n, &count);
    // make_callback runs the microtask and nextTick queues afterwards, as for any I/O callback.
    if (napi_make_callback(env, s->async, self, fn, 1, &count, &result) == napi_pending_exception) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
    napi_close_handle_scope(env, scope);
    if (n < BATCH) return;
  }
}

// new BatchSocket(family: 4|6, address: string, port: number, arena: Buffer, lens: Int32Array, onBatch)
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  int32_t family, port;
  char address[INET6_ADDRSTRLEN + 1];
  size_t address_len;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], address, sizeof address, &address_len));
  CHECK(napi_get_value_int32(env, argv[2], &port));
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
  memset(&addr, 0, sizeof addr);
  if (family == 6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, address, &a6->sin6_addr) != 1) return throw_errno(env, -EINVAL, "inet_pton");
    addr_len = sizeof *a6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &a4->sin_addr) != 1) return throw_errno(env, -EINVAL, "inet_pton");
    addr_len = sizeof *a4;
  }
  int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, -errno, "socket");
  if (bind(fd, (struct sockaddr *)&addr, addr_len) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, -err, "bind");
  }

  batch_socket *s = calloc(1, sizeof *s);
  s->fd = fd;
  s->env = env;
  s->arena = arena;
  s->lens = lens;
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  napi_value resource_name;
  CHECK(napi_create_string_utf8(env, "portolan:udp-batch", NAPI_AUTO_LENGTH, &resource_name));
  CHECK(napi_async_init(env, self, resource_name, &s->async));
  CHECK(napi_create_reference(env, argv[3], 1, &s->arena_ref));
  CHECK(napi_create_reference(env, argv[4], 1, &s->lens_ref));
  CHECK(napi_create_reference(env, argv[5], 1, &s->on_batch));
  CHECK(napi_wrap(env, self, s, NULL, NULL, NULL));
  CHECK(napi_create_reference(env, self, 1, &s->self));
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  return self;
}

static napi_value port(napi_env env, napi_callback_info info) {
  napi_value self, result;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  batch_socket *s = unwrap(env, self);
  if (!s) return NULL;
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(s->fd, (struct sockaddr *)&addr, &len) < 0) return throw_errno(env, -errno, "getsockname");
  int p = addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&addr)->sin_port);
  CHECK(napi_create_int32(env, p, &result));
  return result;
}

// Sends `count` messages. What the kernel has no buffer space for is dropped, as a UDP
// server's replies are under overload (the client retries).
static void send_all(batch_socket *s, int count) {
  int done = 0;
  while (done < count) {
    int n = sendmmsg(s->fd, s->out + done, count - done, 0);
    if (n > 0) {
      done += n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      return;
    } else if (errno != EINTR) {
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

static void on_closed(uv_handle_t *handle) {
  batch_socket *s = (batch_socket *)handle->data;
  close(s->fd);
  free(s);
}

static napi_value close_socket(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  batch_socket *s = NULL;
  if (napi_remove_wrap(env, self, (void **)&s) != napi_ok || s == NULL) return NULL;
  s->closed = 1;
  uv_poll_stop(&s->poll);
  napi_async_destroy(env, s->async);
  napi_delete_reference(env, s->self);
  napi_delete_reference(env, s->on_batch);
  napi_delete_reference(env, s->arena_ref);
  napi_delete_reference(env, s->lens_ref);
  uv_close((uv_handle_t *)&s->poll, on_closed);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"port", NULL, port, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, reply, NULL, NULL, NULL, napi_default, NULL},
      {"peer", NULL, peer, NULL, NULL, NULL, napi_default, NULL},
      {"sendTo", NULL, send_to, NULL, NULL, NULL, napi_default, NULL},
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
