/* SPDX-License-Identifier: MIT */
/* python/ebb/_ebb.c - ebb inside a running CPython: the allocator wrappers
 * for CPython's RAW, MEM and OBJ domains and NumPy's NEP 49 handler, and the
 * calls behind ebb.stats(), ebb.trim(), ebb.explain() and ebb.option().
 *
 * One ebb per process. The extension links libebb-prefix.a (ebb_ names
 * only, hidden from other modules by --exclude-libs), so importing it never
 * replaces the process's malloc. When an ebb is already in the process
 * (LD_PRELOAD=libebb.so, or a program linked with it), `api` points at that
 * one's functions instead and the embedded copy is never called.
 *
 * Wrapping, not replacing: CPython and NumPy already hold blocks of their
 * previous allocators when ebb is installed at run time, so every wrapper
 * sends a pointer ebb does not own (ebb_owns) to the previous allocator, and
 * an ebb pointer to ebb, whether installed or not. Uninstalling therefore
 * only clears `active`: the wrapper stays where it is, new blocks come from
 * the previous allocator, and blocks ebb made keep being freed by ebb.
 *
 * Concurrency: `api`, each domain's `prev` and each handler's `prev` are
 * written once, under the GIL, before the wrapper that reads them is put in
 * place, and never again. `active` is an atomic flag written under the GIL
 * by install/uninstall and read (relaxed: a call that races with the switch
 * may go either way, and both ways are correct) by every allocation. The
 * RAW domain and NumPy's handler are called without the GIL; they touch
 * only `api`, `prev`, `active` and `live` (atomic). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"

#ifdef EBB_WITH_NUMPY
#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#include <numpy/arrayobject.h>
#endif

/* ---- which ebb: the embedded one or the process's -------------------- */
typedef struct {
  void *(*malloc)(size_t);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void (*free)(void *);
  bool (*owns)(const void *);
  size_t (*usable_size)(const void *);
  size_t (*collect)(bool);
  bool (*stats_get_sized)(ebb_stats_t *, size_t);
  bool (*size_info)(size_t, ebb_size_info_t *, size_t);
  bool (*option_get)(const char *, long long *);
  const char *(*version)(void);
} ebb_api_t;

static ebb_api_t api = {ebb_malloc, ebb_calloc, ebb_realloc, ebb_free, ebb_owns, ebb_malloc_usable_size,
                        ebb_collect, ebb_stats_get_sized, ebb_size_info, ebb_option_get, ebb_version};
static char mode_text[PATH_MAX + 64] = "embedded";

/* Looks every function up in the process's global scope, where the
 * embedded copy is not (--exclude-libs). Returns NULL when `out` is
 * filled, else the first name the process's ebb lacks (an older one). */
static const char *api_from_process(ebb_api_t *out) {
  static const char *const names[] = {"ebb_malloc", "ebb_calloc", "ebb_realloc", "ebb_free", "ebb_owns",
                                      "ebb_malloc_usable_size", "ebb_collect", "ebb_stats_get_sized",
                                      "ebb_size_info", "ebb_option_get", "ebb_version"};
  void *found[sizeof names / sizeof names[0]];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    found[i] = dlsym(RTLD_DEFAULT, names[i]);
    if (found[i] == NULL) return names[i];
  }
  _Static_assert(sizeof found == sizeof *out, "one pointer per ebb_api_t field, in order");
  memcpy(out, found, sizeof found);
  return NULL;
}

static void choose_api(void) {
  void *version = dlsym(RTLD_DEFAULT, "ebb_version");
  if (version == NULL || version == (void *)&ebb_version) return;
  ebb_api_t process;
  const char *missing = api_from_process(&process);
  if (missing != NULL) {
    snprintf(mode_text, sizeof mode_text, "embedded (the ebb in the process lacks %s: too old)", missing);
    return;
  }
  api = process;
  Dl_info info;
  const char *where = dladdr(version, &info) && info.dli_fname ? info.dli_fname : "the process";
  snprintf(mode_text, sizeof mode_text, "preloaded (%s)", where);
}

/* ---- CPython's domains ------------------------------------------------ */
typedef struct {
  PyMemAllocatorDomain domain;
  const char *name;
  PyMemAllocatorEx prev; /* the allocator before ours: written once before `hooked` */
  bool hooked;           /* ours is in CPython's table (for good: see the file's comment) */
  atomic_bool active;    /* new blocks from ebb (true) or from prev */
} domain_t;

static domain_t domains[] = {
    {PYMEM_DOMAIN_RAW, "raw", {0}, false, false},
    {PYMEM_DOMAIN_MEM, "mem", {0}, false, false},
    {PYMEM_DOMAIN_OBJ, "obj", {0}, false, false},
};

static bool is_active(atomic_bool *flag) { return atomic_load_explicit(flag, memory_order_relaxed); }

/* CPython wants a distinct pointer for 0 bytes: ebb gets at least 1. */
static size_t at_least_one(size_t n) { return n == 0 ? 1 : n; }

static void *dom_malloc(void *ctx, size_t n) {
  domain_t *d = ctx;
  if (is_active(&d->active)) return api.malloc(at_least_one(n));
  return d->prev.malloc(d->prev.ctx, n);
}

static void *dom_calloc(void *ctx, size_t count, size_t size) {
  domain_t *d = ctx;
  if (!is_active(&d->active)) return d->prev.calloc(d->prev.ctx, count, size);
  if (count == 0 || size == 0) return api.calloc(1, 1);
  return api.calloc(count, size);
}

static void *dom_realloc(void *ctx, void *p, size_t n) {
  domain_t *d = ctx;
  if (p != NULL && api.owns(p)) return api.realloc(p, at_least_one(n));
  if (p == NULL && is_active(&d->active)) return api.malloc(at_least_one(n));
  return d->prev.realloc(d->prev.ctx, p, n); /* a foreign block stays with its allocator */
}

static void dom_free(void *ctx, void *p) {
  domain_t *d = ctx;
  if (p == NULL) return;
  if (api.owns(p))
    api.free(p);
  else
    d->prev.free(d->prev.ctx, p);
}

static domain_t *domain_named(const char *name) {
  for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++)
    if (strcmp(domains[i].name, name) == 0) return &domains[i];
  return NULL;
}

/* The first activation puts the wrapper in place; later ones flip the flag. */
static void domain_set(domain_t *d, bool on) {
  if (!d->hooked && on) {
    PyMem_GetAllocator(d->domain, &d->prev);
    PyMemAllocatorEx ours = {d, dom_malloc, dom_calloc, dom_realloc, dom_free};
    atomic_store(&d->active, true);
    PyMem_SetAllocator(d->domain, &ours);
    d->hooked = true;
    return;
  }
  atomic_store(&d->active, on);
}

static PyObject *py_set_domain(PyObject *self, PyObject *args) {
  (void)self;
  const char *name;
  int on;
  if (!PyArg_ParseTuple(args, "sp", &name, &on)) return NULL;
  domain_t *d = domain_named(name);
  if (d == NULL) return PyErr_Format(PyExc_ValueError, "ebb: error: no allocator domain %R (raw, mem, obj)", PyTuple_GET_ITEM(args, 0));
  domain_set(d, on);
  Py_RETURN_NONE;
}

static PyObject *py_domain_state(PyObject *self, PyObject *arg) {
  (void)self;
  const char *name = PyUnicode_AsUTF8(arg);
  if (name == NULL) return NULL;
  domain_t *d = domain_named(name);
  if (d == NULL) return PyErr_Format(PyExc_ValueError, "ebb: error: no allocator domain %R (raw, mem, obj)", arg);
  return Py_BuildValue("{s:O,s:O}", "hooked", d->hooked ? Py_True : Py_False, "active",
                       is_active(&d->active) ? Py_True : Py_False);
}

/* ---- NumPy's NEP 49 handler ------------------------------------------- */
#ifdef EBB_WITH_NUMPY
/* Large zeroed arrays are made without the GIL, as NumPy's default does:
 * other threads run while the kernel hands out the pages. */
#define GIL_FREE_CALLOC_BYTES (1u << 20)

typedef struct {
  PyDataMem_Handler handler; /* name "ebb"; allocator.ctx points back here */
  PyDataMemAllocator prev;   /* NumPy's default functions: written once before use */
  atomic_bool active;        /* new blocks from ebb (true) or from prev */
  atomic_long live;          /* blocks ebb made through this handler and not yet freed */
} np_handler_t;

static void *np_malloc(void *ctx, size_t n) {
  np_handler_t *h = ctx;
  if (!is_active(&h->active)) return h->prev.malloc(h->prev.ctx, n);
  void *p = api.malloc(at_least_one(n));
  if (p != NULL) atomic_fetch_add_explicit(&h->live, 1, memory_order_relaxed);
  return p;
}

static void *calloc_maybe_without_gil(size_t count, size_t size) {
  if (size != 0 && count >= GIL_FREE_CALLOC_BYTES / size && PyGILState_Check()) {
    void *p;
    Py_BEGIN_ALLOW_THREADS p = api.calloc(count, size);
    Py_END_ALLOW_THREADS return p;
  }
  return api.calloc(count, size);
}

static void *np_calloc(void *ctx, size_t count, size_t size) {
  np_handler_t *h = ctx;
  if (!is_active(&h->active)) return h->prev.calloc(h->prev.ctx, count, size);
  void *p = count == 0 || size == 0 ? api.calloc(1, 1) : calloc_maybe_without_gil(count, size);
  if (p != NULL) atomic_fetch_add_explicit(&h->live, 1, memory_order_relaxed);
  return p;
}

static void *np_realloc(void *ctx, void *p, size_t n) {
  np_handler_t *h = ctx;
  if (p != NULL && api.owns(p)) return api.realloc(p, at_least_one(n));
  if (p == NULL) return np_malloc(ctx, n);
  return h->prev.realloc(h->prev.ctx, p, n);
}

static void np_free(void *ctx, void *p, size_t size) {
  np_handler_t *h = ctx;
  if (p == NULL) return;
  if (api.owns(p)) {
    api.free(p);
    atomic_fetch_sub_explicit(&h->live, 1, memory_order_relaxed);
  } else {
    h->prev.free(h->prev.ctx, p, size);
  }
}

/* `ours`: the capsule set with PyDataMem_SetHandler in the installing
 * context. `takeover`: put in place of the pointer inside NumPy's default
 * capsule, because NumPy keeps the current handler in a context variable
 * and every new thread starts with the default; it is put back when no
 * array it made through ebb is alive. */
static np_handler_t ours, takeover;
static PyObject *ours_capsule;        /* immortal: arrays keep references to it */
static PyObject *default_capsule;     /* NumPy's, referenced for good */
static PyDataMem_Handler *default_handler; /* what default_capsule held */
static PyObject *context_before;      /* the installing context's handler before ours */
static bool numpy_ready;

/* `name`: "ebb" for the context's handler; NumPy's own name for the one put
 * inside NumPy's default capsule, which stays NumPy's default to everyone who
 * asks (PyDataMem_SetHandler(NULL) then get_handler_name() must say
 * "default_allocator": NumPy's test_mem_policy checks it). */
static void handler_init(np_handler_t *h, const PyDataMem_Handler *def, const char *name) {
  memset(h, 0, sizeof *h);
  snprintf(h->handler.name, sizeof h->handler.name, "%s", name);
  h->handler.version = 1;
  h->handler.allocator = (PyDataMemAllocator){h, np_malloc, np_calloc, np_realloc, np_free};
  h->prev = def->allocator;
}

/* NumPy's default capsule: the current one after a reset to the default. */
static PyObject *numpy_default_capsule(void) {
  PyObject *current = PyDataMem_SetHandler(NULL);
  if (current == NULL) return NULL;
  PyObject *def = PyDataMem_GetHandler();
  PyObject *back = PyDataMem_SetHandler(current);
  Py_DECREF(current);
  Py_XDECREF(back);
  if (back == NULL) Py_CLEAR(def);
  return def;
}

static bool numpy_prepare(void) {
  if (numpy_ready) return true;
  if (_import_array() < 0) return false;
  default_capsule = numpy_default_capsule();
  if (default_capsule == NULL) return false;
  default_handler = PyCapsule_GetPointer(default_capsule, "mem_handler");
  if (default_handler == NULL) return false;
  handler_init(&ours, default_handler, "ebb");
  handler_init(&takeover, default_handler, default_handler->name);
  ours_capsule = PyCapsule_New(&ours.handler, "mem_handler", NULL);
  if (ours_capsule == NULL) return false;
  numpy_ready = true;
  return true;
}

static PyObject *py_numpy_install(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  if (!numpy_prepare()) return NULL;
  atomic_store(&ours.active, true);
  atomic_store(&takeover.active, true);
  if (PyCapsule_GetPointer(default_capsule, "mem_handler") != &takeover.handler &&
      PyCapsule_SetPointer(default_capsule, &takeover.handler) < 0)
    return NULL;
  PyObject *before = PyDataMem_SetHandler(ours_capsule);
  if (before == NULL) return NULL;
  if (before == ours_capsule)
    Py_DECREF(before); /* installed twice in this context: keep the first one's */
  else
    Py_XSETREF(context_before, before);
  Py_RETURN_NONE;
}

/* Returns True when NumPy's default capsule holds its own handler again,
 * False while arrays that ebb made through it are alive. */
static PyObject *py_numpy_uninstall(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  if (!numpy_ready) Py_RETURN_TRUE;
  atomic_store(&ours.active, false);
  atomic_store(&takeover.active, false);
  PyObject *current = PyDataMem_GetHandler();
  if (current == NULL) return NULL;
  if (current == ours_capsule && context_before != NULL) {
    PyObject *mine = PyDataMem_SetHandler(context_before);
    if (mine == NULL) {
      Py_DECREF(current);
      return NULL;
    }
    Py_DECREF(mine);
    Py_CLEAR(context_before);
  }
  Py_DECREF(current);
  if (atomic_load(&takeover.live) != 0) Py_RETURN_FALSE;
  if (PyCapsule_SetPointer(default_capsule, default_handler) < 0) return NULL;
  Py_RETURN_TRUE;
}

static PyObject *py_numpy_live(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  return PyLong_FromLong(atomic_load(&ours.live) + atomic_load(&takeover.live));
}
#endif /* EBB_WITH_NUMPY */

/* ---- statistics and control ------------------------------------------- */
typedef struct {
  const char *name;
  size_t offset;
  const char *help;
} stat_field_t;

#define EBB_STAT_FIELD(name, help) {#name, offsetof(ebb_stats_t, name), help},
static const stat_field_t stat_fields[] = {EBB_STATS_FIELDS(EBB_STAT_FIELD)};
#undef EBB_STAT_FIELD

/* Every field the library filled (an older preloaded one fills fewer). */
static PyObject *py_stats(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  ebb_stats_t st;
  if (!api.stats_get_sized(&st, sizeof st)) return PyErr_SetFromErrno(PyExc_OSError);
  PyObject *d = PyDict_New();
  for (size_t i = 0; d != NULL && i < sizeof stat_fields / sizeof stat_fields[0]; i++) {
    if (stat_fields[i].offset + sizeof(uint64_t) > st.size) break;
    uint64_t v;
    memcpy(&v, (const char *)&st + stat_fields[i].offset, sizeof v);
    PyObject *value = PyLong_FromUnsignedLongLong(v);
    if (value == NULL || PyDict_SetItemString(d, stat_fields[i].name, value) < 0) Py_CLEAR(d);
    Py_XDECREF(value);
  }
  return d;
}

static PyObject *py_stats_help(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  PyObject *d = PyDict_New();
  for (size_t i = 0; d != NULL && i < sizeof stat_fields / sizeof stat_fields[0]; i++) {
    PyObject *help = PyUnicode_FromString(stat_fields[i].help);
    if (help == NULL || PyDict_SetItemString(d, stat_fields[i].name, help) < 0) Py_CLEAR(d);
    Py_XDECREF(help);
  }
  return d;
}

static PyObject *py_trim(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  size_t released;
  Py_BEGIN_ALLOW_THREADS released = api.collect(true);
  Py_END_ALLOW_THREADS return PyLong_FromSize_t(released);
}

/* The request size of explain(): a non-negative int; sizes past size_t
 * are as impossible as those past PTRDIFF_MAX, so both become SIZE_MAX
 * and ebb_size_info refuses them with ENOMEM. */
static bool request_size(PyObject *arg, size_t *out) {
  int overflow;
  long long n = PyLong_AsLongLongAndOverflow(arg, &overflow);
  if (n == -1 && PyErr_Occurred()) return false;
  if (overflow < 0 || (overflow == 0 && n < 0)) {
    PyErr_Format(PyExc_ValueError, "ebb: error: size %R is negative", arg);
    return false;
  }
  *out = overflow > 0 ? SIZE_MAX : (size_t)n;
  return true;
}

/* size_info(size): ebb_size_info's answer, from the ebb in use. */
static PyObject *py_size_info(PyObject *self, PyObject *arg) {
  (void)self;
  size_t request;
  if (!request_size(arg, &request)) return NULL;
  ebb_size_info_t info;
  if (!api.size_info(request, &info, sizeof info)) {
    if (errno == ENOMEM)
      return PyErr_Format(PyExc_MemoryError, "ebb: error: %R bytes is more than malloc can serve (PTRDIFF_MAX)", arg);
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return Py_BuildValue("{s:K,s:K,s:s,s:K,s:K,s:K,s:K}", "request", (unsigned long long)info.request, "block",
                       (unsigned long long)info.block, "tier", info.tier, "page", (unsigned long long)info.page,
                       "blocks_per_page", (unsigned long long)info.blocks_per_page, "large_threshold",
                       (unsigned long long)info.large_threshold, "purge_delay_ms",
                       (unsigned long long)info.purge_delay_ms);
}

/* option(name): ebb_option_get's value, from the ebb in use. */
static PyObject *py_option(PyObject *self, PyObject *arg) {
  (void)self;
  const char *name = PyUnicode_AsUTF8(arg);
  if (name == NULL) return NULL;
  long long value;
  if (!api.option_get(name, &value))
    return PyErr_Format(PyExc_ValueError, "ebb: error: %R is not an ebb option (man 7 ebb lists them)",
                        arg);
  return PyLong_FromLongLong(value);
}

/* ---- test helpers: what a C extension does with CPython's allocators -- */
static PyObject *py_pymem_alloc(PyObject *self, PyObject *args) {
  (void)self;
  const char *name;
  Py_ssize_t size;
  if (!PyArg_ParseTuple(args, "sn", &name, &size)) return NULL;
  domain_t *d = domain_named(name);
  if (d == NULL || size < 0) return PyErr_Format(PyExc_ValueError, "ebb: error: bad domain or size");
  void *p = d->domain == PYMEM_DOMAIN_RAW ? PyMem_RawMalloc(size)
            : d->domain == PYMEM_DOMAIN_MEM ? PyMem_Malloc(size)
                                            : PyObject_Malloc(size);
  if (p == NULL) return PyErr_NoMemory();
  memset(p, 0xeb, (size_t)size);
  return PyLong_FromVoidPtr(p);
}

/* Checks the 0xeb fill made by _pymem_alloc, then frees in that domain. */
static PyObject *py_pymem_free(PyObject *self, PyObject *args) {
  (void)self;
  const char *name;
  PyObject *addr;
  Py_ssize_t size;
  if (!PyArg_ParseTuple(args, "sOn", &name, &addr, &size)) return NULL;
  domain_t *d = domain_named(name);
  unsigned char *p = PyLong_AsVoidPtr(addr);
  if (d == NULL || p == NULL) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "ebb: error: bad domain or pointer");
  bool intact = true;
  for (Py_ssize_t i = 0; i < size; i++) intact &= p[i] == 0xeb;
  if (d->domain == PYMEM_DOMAIN_RAW)
    PyMem_RawFree(p);
  else if (d->domain == PYMEM_DOMAIN_MEM)
    PyMem_Free(p);
  else
    PyObject_Free(p);
  return PyBool_FromLong(intact);
}

static PyObject *py_owns(PyObject *self, PyObject *addr) {
  (void)self;
  void *p = PyLong_AsVoidPtr(addr);
  if (p == NULL && PyErr_Occurred()) return NULL;
  return PyBool_FromLong(api.owns(p));
}

static PyObject *py_usable_size(PyObject *self, PyObject *addr) {
  (void)self;
  void *p = PyLong_AsVoidPtr(addr);
  if (p == NULL && PyErr_Occurred()) return NULL;
  if (!api.owns(p)) return PyErr_Format(PyExc_ValueError, "ebb: error: %R is not a block of ebb's", addr);
  return PyLong_FromSize_t(api.usable_size(p));
}

static PyMethodDef methods[] = {
    {"set_domain", py_set_domain, METH_VARARGS, "set_domain(name, on): ebb for CPython's raw, mem or obj domain"},
    {"domain_state", py_domain_state, METH_O, "domain_state(name): {'hooked': ..., 'active': ...}"},
#ifdef EBB_WITH_NUMPY
    {"numpy_install", py_numpy_install, METH_NOARGS, "ebb as NumPy's data allocator"},
    {"numpy_uninstall", py_numpy_uninstall, METH_NOARGS, "NumPy's previous handler back; False while ebb arrays live"},
    {"numpy_live", py_numpy_live, METH_NOARGS, "arrays' data blocks ebb made through its handlers, alive"},
#endif
    {"stats", py_stats, METH_NOARGS, "ebb's statistics as a dict"},
    {"stats_help", py_stats_help, METH_NOARGS, "what each statistic means"},
    {"trim", py_trim, METH_NOARGS, "ebb_collect(true): bytes given back"},
    {"size_info", py_size_info, METH_O, "size_info(size): ebb_size_info as a dict"},
    {"option", py_option, METH_O, "option(name): ebb_option_get"},
    {"usable_size", py_usable_size, METH_O, "usable_size(address): ebb_malloc_usable_size of an ebb block"},
    {"owns", py_owns, METH_O, "owns(address): ebb_owns"},
    {"_pymem_alloc", py_pymem_alloc, METH_VARARGS, "test helper: a filled block from a CPython domain"},
    {"_pymem_free", py_pymem_free, METH_VARARGS, "test helper: check the fill and free it in its domain"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ebb._ebb", "ebb's C side", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ebb(void) {
  choose_api();
  PyObject *m = PyModule_Create(&module);
  if (m == NULL) return NULL;
  if (PyModule_AddStringConstant(m, "version", api.version()) < 0 ||
      PyModule_AddStringConstant(m, "mode", mode_text) < 0 ||
      PyModule_AddIntConstant(m, "with_numpy",
#ifdef EBB_WITH_NUMPY
                              1
#else
                              0
#endif
                              ) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
