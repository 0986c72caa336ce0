/* Frames between the worker and its Erlang port ({packet, 4} on the Erlang side).
 *
 *   <<Length:32, Op:8, Id:64, HeadLen:32, Head:HeadLen/binary, Payload/binary>>
 *
 * Reader(fd): read() does one read(2) into its buffer (blocking: call it when the fd is
 * readable) and returns the complete frames as (op, id, head, payload) tuples, or None at
 * end of file.  A frame larger than the buffer has its payload read straight into the
 * bytes object that the app will see: the body is copied once by the kernel, and at most
 * the part already buffered once more.
 *
 * Writer(fd): push(op, id, head, payload) queues a frame (payload: None, bytes, or a list
 * of bytes: a response body's chunks are written as they are, never joined); flush()
 * writes everything queued with writev(2), the GIL released, under a lock that keeps the
 * frames of concurrent flushes (the loop thread, WSGI stream threads) whole.
 */
#include "codec.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

#define FIXED 13             /* op, id, head length */
#define READ_BUF (256 * 1024)
#define MAX_FRAME 0x7FFFFFFFu

static uint32_t
get32(const unsigned char *q)
{
    return ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
}

static uint64_t
get64(const unsigned char *q)
{
    return ((uint64_t)get32(q) << 32) | get32(q + 4);
}

static void
set32(unsigned char *q, uint32_t v)
{
    q[0] = (unsigned char)(v >> 24);
    q[1] = (unsigned char)(v >> 16);
    q[2] = (unsigned char)(v >> 8);
    q[3] = (unsigned char)v;
}

/* ---- Reader ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned char *buf;
    size_t start, end;
} ReaderObject;

static int
reader_init(ReaderObject *self, PyObject *args, PyObject *kwds)
{
    if (!PyArg_ParseTuple(args, "i:Reader", &self->fd)) {
        return -1;
    }
    self->buf = PyMem_Malloc(READ_BUF);
    if (self->buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->start = self->end = 0;
    return 0;
}

static void
reader_dealloc(ReaderObject *self)
{
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reads exactly n bytes into dst (blocking, GIL released). 0, or -1 with an exception. */
static int
read_exact(int fd, char *dst, size_t n)
{
    while (n > 0) {
        ssize_t got;
        Py_BEGIN_ALLOW_THREADS
        got = read(fd, dst, n);
        Py_END_ALLOW_THREADS
        if (got < 0 && errno == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                return -1;
            }
            continue;
        }
        if (got <= 0) {
            if (got == 0) {
                PyErr_SetString(PyExc_EOFError, "the Erlang port closed in the middle of a frame");
            } else {
                PyErr_SetFromErrno(PyExc_OSError);
            }
            return -1;
        }
        dst += got;
        n -= (size_t)got;
    }
    return 0;
}

static PyObject *
frame_tuple(unsigned op, uint64_t id, PyObject *head, PyObject *payload)
{
    if (head == NULL || payload == NULL) {
        Py_XDECREF(head);
        Py_XDECREF(payload);
        return NULL;
    }
    return Py_BuildValue("(IKNN)", op, (unsigned long long)id, head, payload);
}

/* A frame that does not fit in the buffer: its head and payload get bytes objects of
 * their own, filled with what is buffered, then straight from the pipe. */
static PyObject *
large_frame(ReaderObject *self, size_t length)
{
    const unsigned char *f = self->buf + self->start + 4;
    unsigned op = f[0];
    uint64_t id = get64(f + 1);
    size_t headlen = get32(f + 9);
    size_t paylen = length - FIXED - headlen;
    PyObject *head = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)headlen);
    PyObject *payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)paylen);
    if (head == NULL || payload == NULL) {
        return frame_tuple(op, id, head, payload);
    }
    size_t have = self->end - self->start - 4 - FIXED;
    size_t in_head = have < headlen ? have : headlen;
    memcpy(PyBytes_AS_STRING(head), f + FIXED, in_head);
    memcpy(PyBytes_AS_STRING(payload), f + FIXED + in_head, have - in_head);
    self->start = self->end = 0;
    if (read_exact(self->fd, PyBytes_AS_STRING(head) + in_head, headlen - in_head) < 0 ||
        read_exact(self->fd, PyBytes_AS_STRING(payload) + (have - in_head),
                   paylen - (have - in_head)) < 0) {
        Py_DECREF(head);
        Py_DECREF(payload);
        return NULL;
    }
    return frame_tuple(op, id, head, payload);
}

static PyObject *
reader_read(ReaderObject *self, PyObject *unused)
{
    if (self->start > 0) { /* a partial frame: it fits (larger ones take large_frame) */
        memmove(self->buf, self->buf + self->start, self->end - self->start);
        self->end -= self->start;
        self->start = 0;
    }
    ssize_t got;
    do {
        Py_BEGIN_ALLOW_THREADS
        got = read(self->fd, self->buf + self->end, READ_BUF - self->end);
        Py_END_ALLOW_THREADS
    } while (got < 0 && errno == EINTR && PyErr_CheckSignals() == 0);
    if (got < 0) {
        return PyErr_Occurred() ? NULL : PyErr_SetFromErrno(PyExc_OSError);
    }
    if (got == 0) {
        Py_RETURN_NONE;
    }
    self->end += (size_t)got;
    PyObject *frames = PyList_New(0);
    while (frames != NULL && self->end - self->start >= 4 + FIXED) {
        const unsigned char *f = self->buf + self->start;
        size_t length = get32(f);
        size_t headlen = get32(f + 4 + 9);
        if (length < FIXED || length > MAX_FRAME || headlen > length - FIXED) {
            Py_DECREF(frames);
            PyErr_Format(PyExc_ValueError, "bad frame from Erlang (length %zu, head %zu)", length, headlen);
            return NULL;
        }
        size_t avail = self->end - self->start;
        PyObject *frame;
        if (avail >= 4 + length) {
            f += 4;
            size_t paylen = length - FIXED - headlen;
            frame = frame_tuple(f[0], get64(f + 1),
                                PyBytes_FromStringAndSize((const char *)f + FIXED, (Py_ssize_t)headlen),
                                PyBytes_FromStringAndSize((const char *)f + FIXED + headlen, (Py_ssize_t)paylen));
            self->start += 4 + length;
        } else if (4 + length > READ_BUF) {
            frame = large_frame(self, length);
        } else {
            break; /* the rest comes with the next read */
        }
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_CLEAR(frames);
            break;
        }
        Py_DECREF(frame);
    }
    if (frames != NULL && self->start == self->end) {
        self->start = self->end = 0;
    }
    return frames;
}

static PyMethodDef reader_methods[] = {
    {"read", (PyCFunction)reader_read, METH_NOARGS,
     "read() -> [(op, id, head, payload)] or None at end of file"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hornbeam_port._codec.Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reader(fd): frames from the Erlang port.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
};

/* ---- Writer ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd;
    pthread_mutex_t lock;  /* held (GIL released) while a batch is written */
    PyObject *batch;       /* list of bytes objects, written in order */
    Py_ssize_t pending;    /* bytes in batch */
} WriterObject;

static int
writer_init(WriterObject *self, PyObject *args, PyObject *kwds)
{
    if (!PyArg_ParseTuple(args, "i:Writer", &self->fd)) {
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->batch = PyList_New(0);
    self->pending = 0;
    return self->batch == NULL ? -1 : 0;
}

static void
writer_dealloc(WriterObject *self)
{
    Py_XDECREF(self->batch);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
append(WriterObject *self, PyObject *b)
{
    if (!PyBytes_CheckExact(b)) {
        PyErr_Format(PyExc_TypeError, "frame parts must be bytes, not %.100s", Py_TYPE(b)->tp_name);
        return -1;
    }
    if (PyBytes_GET_SIZE(b) == 0) {
        return 0;
    }
    self->pending += PyBytes_GET_SIZE(b);
    return PyList_Append(self->batch, b);
}

/* push(op, id, head: bytes, payload: None | bytes | list[bytes]) */
static PyObject *
writer_push(WriterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "push(op, id, head: bytes, payload)");
        return NULL;
    }
    unsigned long op = PyLong_AsUnsignedLong(args[0]);
    unsigned long long id = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *payload = args[3];
    size_t paylen = 0;
    if (PyBytes_CheckExact(payload)) {
        paylen = (size_t)PyBytes_GET_SIZE(payload);
    } else if (PyList_CheckExact(payload)) {
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(payload); k++) {
            PyObject *c = PyList_GET_ITEM(payload, k);
            if (!PyBytes_CheckExact(c)) {
                PyErr_SetString(PyExc_TypeError, "payload chunks must be bytes");
                return NULL;
            }
            paylen += (size_t)PyBytes_GET_SIZE(c);
        }
    } else if (payload != Py_None) {
        PyErr_SetString(PyExc_TypeError, "payload must be None, bytes or a list of bytes");
        return NULL;
    }
    size_t headlen = (size_t)PyBytes_GET_SIZE(args[2]);
    size_t length = FIXED + headlen + paylen;
    if (length > MAX_FRAME) {
        PyErr_SetString(PyExc_OverflowError, "frame larger than 2 GiB");
        return NULL;
    }
    PyObject *prefix = PyBytes_FromStringAndSize(NULL, 4 + FIXED);
    if (prefix == NULL) {
        return NULL;
    }
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(prefix);
    set32(q, (uint32_t)length);
    q[4] = (unsigned char)op;
    set32(q + 5, (uint32_t)(id >> 32));
    set32(q + 9, (uint32_t)id);
    set32(q + 13, (uint32_t)headlen);
    int rc = append(self, prefix);
    Py_DECREF(prefix);
    if (rc == 0) {
        rc = append(self, args[2]);
    }
    if (rc == 0 && PyBytes_CheckExact(payload)) {
        rc = append(self, payload);
    } else if (rc == 0 && PyList_CheckExact(payload)) {
        for (Py_ssize_t k = 0; rc == 0 && k < PyList_GET_SIZE(payload); k++) {
            rc = append(self, PyList_GET_ITEM(payload, k));
        }
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Writes iov[0..n) fully. 0, or an errno value. */
static int
writev_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        int chunk = n < IOV_MAX ? n : IOV_MAX;
        ssize_t w = writev(fd, iov, chunk);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        while (chunk > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
            chunk--;
        }
        if (w > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static PyObject *
writer_flush(WriterObject *self, PyObject *unused)
{
    Py_ssize_t n = PyList_GET_SIZE(self->batch);
    if (n == 0) {
        Py_RETURN_NONE;
    }
    PyObject *batch = self->batch;
    self->batch = PyList_New(0);
    self->pending = 0;
    if (self->batch == NULL) {
        self->batch = batch;
        return NULL;
    }
    struct iovec *iov = PyMem_Malloc(sizeof(struct iovec) * (size_t)n);
    if (iov == NULL) {
        Py_DECREF(batch);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *b = PyList_GET_ITEM(batch, k);
        iov[k].iov_base = PyBytes_AS_STRING(b);
        iov[k].iov_len = (size_t)PyBytes_GET_SIZE(b);
    }
    int err;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    err = writev_all(self->fd, iov, (int)n);
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    PyMem_Free(iov);
    Py_DECREF(batch);
    if (err != 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
writer_pending(WriterObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->pending);
}

static PyMethodDef writer_methods[] = {
    {"push", (PyCFunction)(void (*)(void))writer_push, METH_FASTCALL,
     "push(op, id, head, payload): queue a frame"},
    {"flush", (PyCFunction)writer_flush, METH_NOARGS, "flush(): write every queued frame"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"pending", (getter)writer_pending, NULL, "bytes queued, not yet written", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hornbeam_port._codec.Writer",
    .tp_basicsize = sizeof(WriterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Writer(fd): frames to the Erlang port.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)writer_init,
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
};
