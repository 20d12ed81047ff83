/*
 * safetensors.h — a small, strict reader of .safetensors files for the C tests (and a tiny JSON
 * parser it is built on, also used for the fixtures' metadata).
 *
 * File format: 8-byte little-endian header length n, n bytes of JSON, then the data section.
 * The JSON maps tensor names to {"dtype": "F32"|"I64"|..., "shape": [...], "data_offsets": [a, b]}
 * (offsets relative to the data section) and may hold "__metadata__": {string: string}.
 * st_open validates: header length, JSON syntax, dtype known, shape non-negative, a <= b,
 * b within the file, b - a == numel * dtype size.
 */
#ifndef IJEPA_TESTS_SAFETENSORS_H
#define IJEPA_TESTS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* ---- JSON ------------------------------------------------------------------------------ */
typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
    json_type type;
    int boolean;
    double number;
    int is_integer;            /* number written without '.', 'e' and fits int64 */
    int64_t integer;
    char *string;              /* JSON_STRING: decoded, NUL-terminated */
    size_t count;              /* JSON_ARRAY / JSON_OBJECT: number of items */
    char **keys;               /* JSON_OBJECT: count keys */
    struct json_value *items;  /* JSON_ARRAY / JSON_OBJECT: count values */
} json_value;

/* Parses len bytes of JSON into *out (caller frees with json_free). 0 on success, else -1 with
 * a message in err. */
int json_parse(const char *text, size_t len, json_value *out, char *err, size_t errlen);
void json_free(json_value *v);
/* Member of an object (NULL if absent or not an object). */
const json_value *json_get(const json_value *obj, const char *key);

/* ---- safetensors ------------------------------------------------------------------------ */
typedef enum { ST_F32, ST_F64, ST_I64, ST_I32, ST_OTHER } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    char dtype_name[16];
    int ndim;
    int64_t shape[8];
    size_t numel;
    size_t begin, end;         /* absolute byte offsets in the file */
} st_tensor;

typedef struct {
    unsigned char *bytes;      /* the whole file */
    size_t size;
    st_tensor *tensors;
    size_t count;
    json_value header;         /* parsed header (for the metadata) */
} st_file;

/* 0 on success; -1 with a message in err (I/O or format problem). */
int st_open(const char *path, st_file *f, char *err, size_t errlen);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
/* A metadata string ("__metadata__"[key]) or NULL. */
const char *st_metadata(const st_file *f, const char *key);
/* Copies a tensor's values out (malloc'd; caller frees). NULL if absent or of another dtype.
 * *n (if not NULL) receives the element count. */
float *st_read_f32(const st_file *f, const char *name, size_t *n);
int64_t *st_read_i64(const st_file *f, const char *name, size_t *n);

/* ---- writing (for tests that need hand-made files) --------------------------------------- */
typedef struct {
    const char *name;
    const char *dtype;         /* "F32", "I64", ... (written as given) */
    int ndim;
    int64_t shape[8];
    const void *data;
    size_t nbytes;             /* written as given: a wrong size makes an invalid file on purpose */
} st_out_tensor;

/* Writes a safetensors file: metadata is n_meta (key, value) string pairs (meta[2i], meta[2i+1]).
 * 0 on success, -1 with a message in err. */
int st_write(const char *path, const st_out_tensor *tensors, size_t n, const char *const *meta, size_t n_meta,
             char *err, size_t errlen);

#endif
