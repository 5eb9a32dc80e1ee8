/* farcall RPC runtime for C (and C++): a tiny FlatBuffers builder and reader, the error
 * envelope, and the identity check, shared by every generated C client header.
 * Copied verbatim into each generated c/ folder by farcall-gen; do not edit the copy.
 *
 * Builder: builds back to front into a buffer the caller owns (an arena in the request
 * program's own memory), so a request is built where the backend will read it, zero-copy.
 *
 *     uint8_t arena[4096];
 *     fc_builder b;
 *     fc_builder_init(&b, arena, sizeof arena);
 *     fc_ref key = fc_create_string(&b, "k", 1);
 *     fc_ref req = kv_GetRequest_create(&b, key);     // generated per table
 *     size_t len;
 *     const void *buf = fc_finish(&b, req, &len);     // NULL if the arena was too small
 *
 * Reader: accessors take a pointer to a table (fc_root(buf) for the root) and return the
 * field or its default. Replies written by a generated server are verified there; a C
 * client trusts its backend's replies (see docs/idl.md).
 */
#ifndef FARCALL_RPC_H
#define FARCALL_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "farcall.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Negative results of a generated call, besides the gate's FARCALL_E_BACKEND_* (-1001..-1004):
 * -(2000 + farcall.Status). */
#define FARCALL_RPC_E_BAD_REQUEST (-2001)     /* the request failed verification */
#define FARCALL_RPC_E_BAD_POINTER (-2002)     /* a buffer is not in the caller's memory */
#define FARCALL_RPC_E_REPLY_TOO_LARGE (-2003) /* the reply does not fit in the reply buffer */
#define FARCALL_RPC_E_FAILED (-2004)          /* the handler failed: see farcall_rpc_error() */
#define FARCALL_RPC_E_UNIMPLEMENTED (-2005)   /* the backend has no handler for the method */
#define FARCALL_RPC_E_NOT_CONNECTED (-2010)   /* <svc>_connect() was not called or failed */
#define FARCALL_RPC_E_NO_ENTRY (-2011)        /* the backend does not export an entry */
#define FARCALL_RPC_E_MISMATCH (-2012)        /* client and backend schemas differ */
#define FARCALL_RPC_E_BAD_REPLY (-2013)       /* the reply is not a FlatBuffer of the right kind */
#define FARCALL_RPC_E_BUILD (-2014)           /* the request did not fit in the builder's arena */

/* File identifiers (bytes 4..8 of a buffer). */
#define FARCALL_RPC_ID_REPLY "FCR0"
#define FARCALL_RPC_ID_ERROR "FCE0"
#define FARCALL_RPC_ID_IDENTITY "FCI0"

#ifdef __cplusplus
#define FC_ALIGNAS(n) alignas(n)
#else
#define FC_ALIGNAS(n) _Alignas(n)
#endif

typedef int64_t (*farcall_rpc_fn)(const void *in, size_t in_len, void *out, size_t out_cap);

/* ---- reading ------------------------------------------------------------------------ */

static inline uint16_t fc_u16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t fc_u32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline int32_t fc_i32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* The root table of a finished buffer. */
static inline const void *fc_root(const void *buf) {
  return (const uint8_t *)buf + fc_u32(buf);
}

/* Does the finished buffer carry this 4-character file identifier? */
static inline int fc_has_identifier(const void *buf, size_t len, const char *id) {
  return len >= 8 && memcmp((const uint8_t *)buf + 4, id, 4) == 0;
}

/* Where field `voffset` (4 + 2 * id) of table `t` is stored, or NULL if absent. */
static inline const uint8_t *fc_field(const void *t, uint16_t voffset) {
  if (!t) return NULL;
  const uint8_t *tp = (const uint8_t *)t;
  const uint8_t *vt = tp - fc_i32(tp);
  if (voffset >= fc_u16(vt)) return NULL;
  uint16_t o = fc_u16(vt + voffset);
  return o ? tp + o : NULL;
}

/* Follows the offset stored at `p` (strings, vectors, tables). */
static inline const uint8_t *fc_deref(const uint8_t *p) { return p ? p + fc_u32(p) : NULL; }

/* A string field: its bytes (NUL-terminated) and length; NULL/0 if absent. */
static inline const char *fc_string_at(const uint8_t *p, size_t *len) {
  const uint8_t *s = fc_deref(p);
  if (len) *len = s ? fc_u32(s) : 0;
  return s ? (const char *)(s + 4) : NULL;
}

/* A vector field: its element count, and its first element. */
static inline size_t fc_vec_len(const uint8_t *p) { const uint8_t *v = fc_deref(p); return v ? fc_u32(v) : 0; }
static inline const uint8_t *fc_vec_data(const uint8_t *p) { const uint8_t *v = fc_deref(p); return v ? v + 4 : NULL; }

/* Element i of a vector of offsets (tables or strings). */
static inline const uint8_t *fc_vec_ref(const uint8_t *p, size_t i) {
  const uint8_t *d = fc_vec_data(p);
  return d ? fc_deref(d + 4 * i) : NULL;
}

/* ---- building ----------------------------------------------------------------------- */

#ifndef FC_MAX_FIELDS
#define FC_MAX_FIELDS 64
#endif

/* An offset into a buffer under construction (counted from its end), as FlatBuffers does. */
typedef uint32_t fc_ref;

typedef struct fc_builder {
  uint8_t *buf;
  size_t cap;
  size_t size;     /* bytes used, at the end of buf */
  size_t minalign;
  int error;       /* set when the arena was too small; every later step is a no-op */
  size_t table_start;
  int nfields;
  uint32_t slots[FC_MAX_FIELDS];
} fc_builder;

static inline void fc_builder_init(fc_builder *b, void *buf, size_t cap) {
  b->buf = (uint8_t *)buf;
  b->cap = cap & ~(size_t)7; /* keep the end 8-aligned relative to the start */
  b->size = 0;
  b->minalign = 1;
  b->error = 0;
  b->table_start = 0;
  b->nfields = 0;
}

static inline void fc_builder_reset(fc_builder *b) { fc_builder_init(b, b->buf, b->cap); }

static inline uint8_t *fc_claim(fc_builder *b, size_t n) {
  if (b->error || n > b->cap - b->size) {
    b->error = 1;
    return NULL;
  }
  b->size += n;
  return b->buf + b->cap - b->size;
}

static inline void fc_pad(fc_builder *b, size_t n) {
  uint8_t *p = fc_claim(b, n);
  if (p) memset(p, 0, n);
}

/* Pads so that after writing `len` more bytes the size is a multiple of `align`. */
static inline void fc_prealign(fc_builder *b, size_t len, size_t align) {
  if (align > b->minalign) b->minalign = align;
  fc_pad(b, (~(b->size + len) + 1) & (align - 1));
}

static inline void fc_push(fc_builder *b, const void *data, size_t n) {
  uint8_t *p = fc_claim(b, n);
  if (p && n) memcpy(p, data, n);
}

static inline void fc_push_u32(fc_builder *b, uint32_t v) { fc_prealign(b, 4, 4); fc_push(b, &v, 4); }

/* Writes an offset to `ref` at the current position. */
static inline void fc_push_ref(fc_builder *b, fc_ref ref) {
  fc_prealign(b, 4, 4);
  uint32_t v = (uint32_t)(b->size + 4 - ref);
  fc_push(b, &v, 4);
}

static inline fc_ref fc_create_string(fc_builder *b, const char *s, size_t len) {
  fc_prealign(b, len + 1, 4);
  fc_pad(b, 1);
  fc_push(b, s, len);
  fc_push_u32(b, (uint32_t)len);
  return b->error ? 0 : (fc_ref)b->size;
}

static inline fc_ref fc_create_cstring(fc_builder *b, const char *s) { return fc_create_string(b, s, s ? strlen(s) : 0); }

/* A vector of scalars or structs: `n` elements of `elem_size` bytes, aligned to `align`. */
static inline fc_ref fc_create_vector(fc_builder *b, const void *data, size_t n, size_t elem_size, size_t align) {
  fc_prealign(b, n * elem_size, 4);
  fc_prealign(b, n * elem_size, align);
  fc_push(b, data, n * elem_size);
  fc_push_u32(b, (uint32_t)n);
  return b->error ? 0 : (fc_ref)b->size;
}

/* A vector of tables or strings made earlier. */
static inline fc_ref fc_create_vector_refs(fc_builder *b, const fc_ref *refs, size_t n) {
  fc_prealign(b, n * 4, 4);
  for (size_t i = n; i-- > 0;) fc_push_ref(b, refs[i]);
  fc_push_u32(b, (uint32_t)n);
  return b->error ? 0 : (fc_ref)b->size;
}

static inline void fc_table_start(fc_builder *b, int nfields) {
  if (nfields > FC_MAX_FIELDS) { b->error = 1; return; }
  b->nfields = nfields;
  memset(b->slots, 0, sizeof b->slots);
  b->table_start = b->size;
}

static inline void fc_table_add(fc_builder *b, int id, const void *v, size_t size) {
  fc_prealign(b, size, size);
  fc_push(b, v, size);
  if (id < FC_MAX_FIELDS) b->slots[id] = (uint32_t)b->size;
}

static inline void fc_table_add_ref(fc_builder *b, int id, fc_ref ref) {
  if (!ref) return; /* absent */
  fc_push_ref(b, ref);
  if (id < FC_MAX_FIELDS) b->slots[id] = (uint32_t)b->size;
}

/* A struct stored inline in the table. */
static inline void fc_table_add_struct(fc_builder *b, int id, const void *v, size_t size, size_t align) {
  if (!v) return;
  fc_prealign(b, size, align);
  fc_push(b, v, size);
  if (id < FC_MAX_FIELDS) b->slots[id] = (uint32_t)b->size;
}

static inline fc_ref fc_table_end(fc_builder *b) {
  int32_t placeholder = 0;
  fc_prealign(b, 4, 4);
  fc_push(b, &placeholder, 4);
  if (b->error) return 0;
  size_t object = b->size;
  int n = b->nfields;
  while (n > 0 && !b->slots[n - 1]) n--; /* trailing absent fields need no slot */
  for (int i = n - 1; i >= 0; i--) {
    uint16_t o = b->slots[i] ? (uint16_t)(object - b->slots[i]) : 0;
    fc_push(b, &o, 2);
  }
  uint16_t object_size = (uint16_t)(object - b->table_start);
  uint16_t vt_size = (uint16_t)(4 + 2 * n);
  fc_push(b, &object_size, 2);
  fc_push(b, &vt_size, 2);
  if (b->error) return 0;
  int32_t soffset = (int32_t)((int64_t)b->size - (int64_t)object);
  memcpy(b->buf + b->cap - object, &soffset, 4);
  return (fc_ref)object;
}

/* Finishes the buffer with `root`; returns its start (inside the arena) and length, or NULL
 * if the arena was too small. `identifier` may be NULL. */
static inline const void *fc_finish_id(fc_builder *b, fc_ref root, const char *identifier, size_t *len) {
  fc_prealign(b, 4 + (identifier ? 4 : 0), b->minalign > 4 ? b->minalign : 4);
  if (identifier) fc_push(b, identifier, 4);
  fc_push_ref(b, root);
  if (b->error || !root) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = b->size;
  return b->buf + b->cap - b->size;
}

static inline const void *fc_finish(fc_builder *b, fc_ref root, size_t *len) { return fc_finish_id(b, root, NULL, len); }

/* ---- the error envelope (farcall.Error, identifier "FCE0") --------------------------- */

/* If `reply` is an error envelope, fills what it carries and returns 1. */
static inline int farcall_rpc_error(const void *reply, size_t len, int32_t *status, int32_t *code, const char **message) {
  if (!fc_has_identifier(reply, len, FARCALL_RPC_ID_ERROR)) return 0;
  const void *t = fc_root(reply);
  const uint8_t *p;
  if (status) *status = (p = fc_field(t, 4)) ? fc_i32(p) : 4;
  if (code) *code = (p = fc_field(t, 6)) ? fc_i32(p) : 0;
  if (message) {
    const char *m = fc_string_at(fc_field(t, 8), NULL);
    *message = m ? m : "";
  }
  return 1;
}

/* Calls `fn` and turns an error envelope into -(2000 + status). */
static inline int64_t farcall_rpc_call(farcall_rpc_fn fn, const void *req, size_t req_len, void *reply, size_t reply_cap) {
  if (!fn) return FARCALL_RPC_E_NOT_CONNECTED;
  int64_t r = fn(req, req_len, reply, reply_cap);
  if (r < 0) return r;
  int32_t status;
  if (farcall_rpc_error(reply, (size_t)r, &status, NULL, NULL)) return -(2000 + (int64_t)(status ? status : 4));
  if (!fc_has_identifier(reply, (size_t)r, FARCALL_RPC_ID_REPLY)) return FARCALL_RPC_E_BAD_REPLY;
  return r;
}

/* A readable name for a negative result. */
static inline const char *farcall_rpc_strerror(int64_t r) {
  switch (r) {
    case FARCALL_E_BACKEND_FAULT: return "the backend crashed during the call";
    case FARCALL_E_BACKEND_TIMEOUT: return "the backend timed out";
    case FARCALL_E_BACKEND_BUSY: return "the backend was busy";
    case FARCALL_E_BACKEND_EXIT: return "the backend exited during the call";
    case FARCALL_RPC_E_BAD_REQUEST: return "the request failed verification";
    case FARCALL_RPC_E_BAD_POINTER: return "a buffer is not in the caller's memory";
    case FARCALL_RPC_E_REPLY_TOO_LARGE: return "the reply does not fit in the reply buffer";
    case FARCALL_RPC_E_FAILED: return "the handler failed";
    case FARCALL_RPC_E_UNIMPLEMENTED: return "the method is not implemented by the backend";
    case FARCALL_RPC_E_NOT_CONNECTED: return "not connected";
    case FARCALL_RPC_E_NO_ENTRY: return "the backend does not export the entry";
    case FARCALL_RPC_E_MISMATCH: return "client and backend schemas differ";
    case FARCALL_RPC_E_BAD_REPLY: return "the reply is not a valid FlatBuffer of the response type";
    case FARCALL_RPC_E_BUILD: return "the request did not fit in the arena";
    default: return r < 0 ? "error" : "ok";
  }
}

/* ---- connecting ---------------------------------------------------------------------- */

typedef struct farcall_rpc_method_id {
  const char *name;
  const char *entry;
  uint64_t hash;
  farcall_rpc_fn *slot; /* where the gate address goes */
} farcall_rpc_method_id;

/* The message of the last failed connect, in this program. */
static char farcall_rpc_last_error_buf[512];
static inline const char *farcall_rpc_last_error(void) { return farcall_rpc_last_error_buf; }

static inline void fc__append(char *dst, size_t cap, const char *s) {
  size_t n = strlen(dst);
  while (*s && n + 1 < cap) dst[n++] = *s++;
  dst[n] = 0;
}

static inline void fc__hex(char out[19], uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  out[0] = '0';
  out[1] = 'x';
  for (int i = 0; i < 16; i++) out[2 + i] = digits[(v >> (60 - 4 * i)) & 15];
  out[18] = 0;
}

static inline void fc__qualify(char *dst, size_t cap, const char *backend, const char *entry) {
  dst[0] = 0;
  if (backend && *backend) {
    fc__append(dst, cap, backend);
    fc__append(dst, cap, ".");
  }
  fc__append(dst, cap, entry);
}

/* Looks up every entry of a service and compares the backend's identity with the client's.
 * Returns 0, or a negative FARCALL_RPC_E_* with farcall_rpc_last_error() saying why. */
static inline int farcall_rpc_connect(const char *backend, const char *service, const char *id_entry, uint64_t service_hash,
                                      const farcall_rpc_method_id *methods, size_t n) {
  char name[300];
  farcall_rpc_last_error_buf[0] = 0;
  fc__qualify(name, sizeof name, backend, id_entry);
  farcall_rpc_fn id = (farcall_rpc_fn)farcall_lookup(name);
  if (!id) {
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, "no backend serves ");
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, service);
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, ": entry ");
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, name);
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, " not found");
    return FARCALL_RPC_E_NO_ENTRY;
  }
  static uint64_t idbuf[1024];
  int64_t r = id(NULL, 0, idbuf, sizeof idbuf);
  if (r < 0 || !fc_has_identifier(idbuf, (size_t)r, FARCALL_RPC_ID_IDENTITY)) {
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, "the identity entry of ");
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, service);
    fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, " gave no identity");
    return FARCALL_RPC_E_BAD_REPLY;
  }
  const void *t = fc_root(idbuf);
  const uint8_t *hp = fc_field(t, 6);
  uint64_t backend_hash = 0;
  if (hp) memcpy(&backend_hash, hp, 8);
  if (backend_hash != service_hash) {
    char *e = farcall_rpc_last_error_buf;
    size_t cap = sizeof farcall_rpc_last_error_buf;
    char hx[19];
    fc__append(e, cap, "schema mismatch for ");
    fc__append(e, cap, service);
    fc__append(e, cap, ":");
    const uint8_t *mv = fc_field(t, 8);
    size_t mn = fc_vec_len(mv);
    for (size_t i = 0; i < n; i++) {
      const char *why = " missing in the backend";
      uint64_t bh = 0;
      for (size_t j = 0; j < mn; j++) {
        const uint8_t *m = fc_vec_ref(mv, j);
        const char *mname = fc_string_at(fc_field(m, 4), NULL);
        if (mname && !strcmp(mname, methods[i].name)) {
          const uint8_t *p = fc_field(m, 8);
          if (p) memcpy(&bh, p, 8);
          why = bh == methods[i].hash ? NULL : " differs";
          break;
        }
      }
      if (!why) continue;
      fc__append(e, cap, " method ");
      fc__append(e, cap, methods[i].name);
      fc__append(e, cap, why);
      fc__append(e, cap, " (client ");
      fc__hex(hx, methods[i].hash);
      fc__append(e, cap, hx);
      if (bh) {
        fc__append(e, cap, ", backend ");
        fc__hex(hx, bh);
        fc__append(e, cap, hx);
      }
      fc__append(e, cap, ");");
    }
    fc__append(e, cap, " regenerate both sides from the same schema");
    return FARCALL_RPC_E_MISMATCH;
  }
  for (size_t i = 0; i < n; i++) {
    fc__qualify(name, sizeof name, backend, methods[i].entry);
    farcall_rpc_fn f = (farcall_rpc_fn)farcall_lookup(name);
    if (!f) {
      fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, "entry ");
      fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, name);
      fc__append(farcall_rpc_last_error_buf, sizeof farcall_rpc_last_error_buf, " not found");
      return FARCALL_RPC_E_NO_ENTRY;
    }
    *methods[i].slot = f;
  }
  return 0;
}

#ifdef __cplusplus
}
#endif
#endif /* FARCALL_RPC_H */
