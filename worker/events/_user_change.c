/*
 * worker.events._user_change: reads one Avro-encoded UserChange (schemas/user_change.avsc, without
 * logical types) into the dict fastavro returns for it, about five times faster.
 *
 * Why it exists: in a backlog the poll loop spends about half its time in fastavro, whose
 * compiled reader still dispatches on the schema's JSON and reads varints a byte at a time
 * through a file object. This reader knows the one schema the worker decodes without a
 * registry, reads straight from the value's bytes and checks every length against them.
 *
 * Contract (tests/unit/events/test_user_change_reader.py compares it with fastavro):
 *   - every valid encoding reads to the same dict as fastavro's, same keys in the same order;
 *   - it is never more lenient than fastavro: where fastavro refuses bytes, so does this;
 *   - it is stricter where the Avro specification is: a varint longer than 10 bytes or beyond
 *     64 bits, a boolean byte other than 0 or 1, a negative length, a union branch out of
 *     range, a length past the end, invalid UTF-8, and any byte after the record;
 *   - it raises ValueError, never crashes, and reads nothing past the value's end.
 * decode.py uses it only when the reader schema is the one it was written for, and only after
 * it read a probe record exactly as fastavro does; otherwise fastavro does the reading.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Cursor;

/* Interned once: the record's field names, in the schema's order. */
static PyObject *k_uid, *k_changed_at, *k_display_name, *k_email, *k_properties;

static int fail(const char *what) {
    PyErr_SetString(PyExc_ValueError, what);
    return -1;
}

/* A zigzag varint of at most 10 bytes that fits 64 bits. */
static int read_long(Cursor *c, int64_t *out) {
    uint64_t n = 0;
    int shift = 0;
    for (;;) {
        if (c->at >= c->end)
            return fail("truncated: a long runs past the end of the value");
        unsigned char b = *c->at++;
        if (shift == 63 && (b & 0x7E))
            return fail("a long does not fit in 64 bits");
        n |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            break;
        shift += 7;
        if (shift > 63)
            return fail("a long is longer than 10 bytes");
    }
    *out = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
    return 0;
}

static PyObject *read_string(Cursor *c) {
    int64_t len;
    if (read_long(c, &len) < 0)
        return NULL;
    if (len < 0) {
        fail("a string has a negative length");
        return NULL;
    }
    if (len > c->end - c->at) {
        fail("truncated: a string runs past the end of the value");
        return NULL;
    }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)c->at, (Py_ssize_t)len, "strict");
    c->at += len;
    return s; /* NULL with UnicodeDecodeError (a ValueError) on invalid UTF-8 */
}

/* A union index, checked against the number of branches. */
static int read_branch(Cursor *c, int64_t branches, int64_t *out) {
    if (read_long(c, out) < 0)
        return -1;
    if (*out < 0 || *out >= branches)
        return fail("a union branch index is out of range");
    return 0;
}

/* ["null", "string"] */
static PyObject *read_optional_string(Cursor *c) {
    int64_t branch;
    if (read_branch(c, 2, &branch) < 0)
        return NULL;
    if (branch == 0)
        Py_RETURN_NONE;
    return read_string(c);
}

/* ["null", "boolean", "long", "double", "string"] */
static PyObject *read_value(Cursor *c) {
    int64_t branch;
    if (read_branch(c, 5, &branch) < 0)
        return NULL;
    switch (branch) {
    case 0:
        Py_RETURN_NONE;
    case 1:
        if (c->at >= c->end) {
            fail("truncated: a boolean runs past the end of the value");
            return NULL;
        }
        if (*c->at > 1) {
            fail("a boolean byte is neither 0 nor 1");
            return NULL;
        }
        return PyBool_FromLong(*c->at++);
    case 2: {
        int64_t n;
        if (read_long(c, &n) < 0)
            return NULL;
        return PyLong_FromLongLong(n);
    }
    case 3: {
        if (c->end - c->at < 8) {
            fail("truncated: a double runs past the end of the value");
            return NULL;
        }
        double d = PyFloat_Unpack8((const char *)c->at, 1); /* little-endian */
        if (d == -1.0 && PyErr_Occurred())
            return NULL;
        c->at += 8;
        return PyFloat_FromDouble(d);
    }
    default:
        return read_string(c);
    }
}

/* map<value>: blocks of entries, a negative count followed by the block's size in bytes. */
static PyObject *read_properties(Cursor *c) {
    PyObject *map = PyDict_New();
    if (map == NULL)
        return NULL;
    for (;;) {
        int64_t count;
        if (read_long(c, &count) < 0)
            goto error;
        if (count == 0)
            return map;
        if (count < 0) {
            int64_t size;
            if (count == INT64_MIN) {
                fail("a map block count is out of range");
                goto error;
            }
            count = -count;
            if (read_long(c, &size) < 0)
                goto error;
            if (size < 0) {
                fail("a map block has a negative size");
                goto error;
            }
        }
        /* Each entry takes at least two bytes: a bound on the count before reading any. */
        if (count > (c->end - c->at) / 2) {
            fail("truncated: a map block runs past the end of the value");
            goto error;
        }
        for (int64_t i = 0; i < count; i++) {
            PyObject *key = read_string(c);
            if (key == NULL)
                goto error;
            PyObject *value = read_value(c);
            if (value == NULL) {
                Py_DECREF(key);
                goto error;
            }
            int failed = PyDict_SetItem(map, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (failed < 0)
                goto error;
        }
    }
error:
    Py_DECREF(map);
    return NULL;
}

static int set_field(PyObject *record, PyObject *key, PyObject *value) {
    if (value == NULL)
        return -1;
    int failed = PyDict_SetItem(record, key, value);
    Py_DECREF(value);
    return failed;
}

static PyObject *read_user_change(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "read_user_change takes bytes");
        return NULL;
    }
    Cursor c;
    c.at = (const unsigned char *)PyBytes_AS_STRING(arg);
    c.end = c.at + PyBytes_GET_SIZE(arg);
    PyObject *record = PyDict_New();
    if (record == NULL)
        return NULL;
    int64_t changed_at;
    if (set_field(record, k_uid, read_string(&c)) < 0)
        goto error;
    if (read_long(&c, &changed_at) < 0)
        goto error;
    if (set_field(record, k_changed_at, PyLong_FromLongLong(changed_at)) < 0)
        goto error;
    if (set_field(record, k_display_name, read_optional_string(&c)) < 0)
        goto error;
    if (set_field(record, k_email, read_optional_string(&c)) < 0)
        goto error;
    if (set_field(record, k_properties, read_properties(&c)) < 0)
        goto error;
    if (c.at != c.end) {
        fail("trailing bytes after the Avro record");
        goto error;
    }
    return record;
error:
    Py_DECREF(record);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_user_change", read_user_change, METH_O,
     "read_user_change(value: bytes) -> dict: one Avro UserChange, as fastavro reads it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "worker.events._user_change",
    .m_doc = "A compiled reader for the local UserChange schema (see _user_change.c).",
    .m_size = -1,
    .m_methods = methods,
};

/* The schema this file reads, in Avro's Parsing Canonical Form: decode.py uses the reader only
 * for a schema with exactly this form. Change the two together. */
static const char SCHEMA[] =
    "{\"name\":\"usersync.v1.UserChange\",\"type\":\"record\",\"fields\":["
    "{\"name\":\"uid\",\"type\":\"string\"},"
    "{\"name\":\"changed_at\",\"type\":\"long\"},"
    "{\"name\":\"display_name\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"email\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"properties\",\"type\":{\"type\":\"map\",\"values\":"
    "[\"null\",\"boolean\",\"long\",\"double\",\"string\"]}}]}";

PyMODINIT_FUNC PyInit__user_change(void) {
    if (!(k_uid = PyUnicode_InternFromString("uid")) ||
        !(k_changed_at = PyUnicode_InternFromString("changed_at")) ||
        !(k_display_name = PyUnicode_InternFromString("display_name")) ||
        !(k_email = PyUnicode_InternFromString("email")) ||
        !(k_properties = PyUnicode_InternFromString("properties")))
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && PyModule_AddStringConstant(module, "SCHEMA", SCHEMA) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
