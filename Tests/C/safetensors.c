/* safetensors.c — see safetensors.h. Little-endian hosts only (checked at open). */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON ------------------------------------------------------------------------------- */
typedef struct {
    const char *p, *end;
    char *err;
    size_t errlen;
    int depth;
} jparser;

static int jfail(jparser *ps, const char *fmt, ...) {
    if (ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void jskip(jparser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int jvalue(jparser *ps, json_value *v);

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_utf8(char **o, unsigned cp) {
    char *q = *o;
    if (cp < 0x80) *q++ = (char)cp;
    else if (cp < 0x800) { *q++ = (char)(0xC0 | (cp >> 6)); *q++ = (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12)); *q++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18)); *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

/* Parses a string at ps->p (which is '"') into a malloc'd decoded copy. */
static int jstring(jparser *ps, char **out) {
    ps->p++; /* opening quote */
    const char *s = ps->p;
    size_t raw = 0;
    while (s + raw < ps->end && s[raw] != '"') raw += s[raw] == '\\' ? 2 : 1;
    if (s + raw >= ps->end) return jfail(ps, "unterminated string");
    char *buf = malloc(raw + 1), *o = buf; /* decoded is never longer than the raw text */
    if (!buf) return jfail(ps, "out of memory");
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) { free(buf); return jfail(ps, "control character in string"); }
        if (c != '\\') { *o++ = (char)c; continue; }
        if (ps->p >= ps->end) { free(buf); return jfail(ps, "bad escape"); }
        char e = *ps->p++;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            if (ps->end - ps->p < 4) { free(buf); return jfail(ps, "bad \\u escape"); }
            unsigned cp = 0;
            for (int i = 0; i < 4; i++) {
                int h = hexval(ps->p[i]);
                if (h < 0) { free(buf); return jfail(ps, "bad \\u escape"); }
                cp = cp * 16 + (unsigned)h;
            }
            ps->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                unsigned lo = 0;
                int okh = 1;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(ps->p[2 + i]);
                    if (h < 0) okh = 0; else lo = lo * 16 + (unsigned)h;
                }
                if (okh && lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); ps->p += 6; }
            }
            /* \uXXXX takes 6 raw bytes and at most 4 decoded ones (surrogate pairs: 12 -> 4) */
            put_utf8(&o, cp);
            break;
        }
        default: free(buf); return jfail(ps, "bad escape \\%c", e);
        }
    }
    if (ps->p >= ps->end) { free(buf); return jfail(ps, "unterminated string"); }
    ps->p++; /* closing quote */
    *o = '\0';
    *out = buf;
    return 0;
}

static int jnumber(jparser *ps, json_value *v) {
    const char *s = ps->p;
    size_t n = 0;
    int integer = 1;
    while (s + n < ps->end && strchr("+-0123456789.eE", s[n])) {
        if (s[n] == '.' || s[n] == 'e' || s[n] == 'E') integer = 0;
        n++;
    }
    if (n == 0 || n > 63) return jfail(ps, "bad number");
    char tmp[64];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *endp;
    errno = 0;
    v->type = JSON_NUMBER;
    v->number = strtod(tmp, &endp);
    if (*endp != '\0') return jfail(ps, "bad number '%s'", tmp);
    if (integer) {
        errno = 0;
        long long ll = strtoll(tmp, &endp, 10);
        if (*endp == '\0' && errno == 0) { v->is_integer = 1; v->integer = ll; }
    }
    ps->p += n;
    return 0;
}

static int jcontainer(jparser *ps, json_value *v, int object) {
    char close = object ? '}' : ']';
    ps->p++;
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    size_t cap = 0;
    jskip(ps);
    if (ps->p < ps->end && *ps->p == close) { ps->p++; return 0; }
    for (;;) {
        if (v->count == cap) {
            cap = cap ? cap * 2 : 8;
            json_value *ni = realloc(v->items, cap * sizeof *ni);
            if (!ni) return jfail(ps, "out of memory");
            v->items = ni;
            if (object) {
                char **nk = realloc(v->keys, cap * sizeof *nk);
                if (!nk) return jfail(ps, "out of memory");
                v->keys = nk;
            }
        }
        jskip(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"') return jfail(ps, "expected a key");
            char *key = NULL;
            if (jstring(ps, &key)) return -1;
            v->keys[v->count] = key;
            jskip(ps);
            if (ps->p >= ps->end || *ps->p != ':') { free(key); return jfail(ps, "expected ':'"); }
            ps->p++;
        }
        memset(&v->items[v->count], 0, sizeof v->items[0]);
        v->count++; /* counted before parsing so that json_free releases partial values */
        if (jvalue(ps, &v->items[v->count - 1])) return -1;
        jskip(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; return 0; }
        return jfail(ps, "expected ',' or '%c'", close);
    }
}

static int jvalue(jparser *ps, json_value *v) {
    memset(v, 0, sizeof *v);
    if (++ps->depth > 64) return jfail(ps, "nesting too deep");
    jskip(ps);
    if (ps->p >= ps->end) return jfail(ps, "unexpected end");
    int r;
    char c = *ps->p;
    if (c == '{' || c == '[') r = jcontainer(ps, v, c == '{');
    else if (c == '"') { v->type = JSON_STRING; r = jstring(ps, &v->string); }
    else if (c == '-' || (c >= '0' && c <= '9')) r = jnumber(ps, v);
    else if ((size_t)(ps->end - ps->p) >= 4 && !memcmp(ps->p, "true", 4)) { v->type = JSON_BOOL; v->boolean = 1; ps->p += 4; r = 0; }
    else if ((size_t)(ps->end - ps->p) >= 5 && !memcmp(ps->p, "false", 5)) { v->type = JSON_BOOL; ps->p += 5; r = 0; }
    else if ((size_t)(ps->end - ps->p) >= 4 && !memcmp(ps->p, "null", 4)) { v->type = JSON_NULL; ps->p += 4; r = 0; }
    else r = jfail(ps, "unexpected character '%c'", c);
    ps->depth--;
    return r;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->count; i++) {
        if (v->keys) free(v->keys[i]);
        if (v->items) json_free(&v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->string);
    memset(v, 0, sizeof *v);
}

int json_parse(const char *text, size_t len, json_value *out, char *err, size_t errlen) {
    jparser ps = {text, text + len, err, errlen, 0};
    memset(out, 0, sizeof *out);
    if (jvalue(&ps, out)) {
        size_t at = (size_t)(ps.p - text);
        if (err && errlen) {
            size_t l = strlen(err);
            snprintf(err + l, errlen - l, " at byte %zu", at);
        }
        json_free(out);
        return -1;
    }
    jskip(&ps);
    if (ps.p != ps.end) {
        json_free(out);
        return jfail(&ps, "trailing characters after the JSON value");
    }
    return 0;
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

/* ---- safetensors -------------------------------------------------------------------------- */
static int st_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static size_t dtype_size(const char *d, st_dtype *t) {
    static const struct { const char *n; size_t s; st_dtype t; } K[] = {
        {"F32", 4, ST_F32}, {"F64", 8, ST_F64}, {"I64", 8, ST_I64}, {"I32", 4, ST_I32},
        {"F16", 2, ST_OTHER}, {"BF16", 2, ST_OTHER}, {"I16", 2, ST_OTHER}, {"I8", 1, ST_OTHER},
        {"U8", 1, ST_OTHER}, {"BOOL", 1, ST_OTHER}, {"U16", 2, ST_OTHER}, {"U32", 4, ST_OTHER},
        {"U64", 8, ST_OTHER},
    };
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++)
        if (strcmp(d, K[i].n) == 0) { *t = K[i].t; return K[i].s; }
    return 0;
}

void st_close(st_file *f) {
    if (!f) return;
    free(f->bytes);
    free(f->tensors); /* names point into the parsed header */
    json_free(&f->header);
    memset(f, 0, sizeof *f);
}

int st_open(const char *path, st_file *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) return st_fail(err, errlen, "big-endian host: not supported");
    FILE *fp = fopen(path, "rb");
    if (!fp) return st_fail(err, errlen, "%s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 8 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return st_fail(err, errlen, "%s: too short to be a safetensors file", path);
    }
    f->size = (size_t)size;
    f->bytes = malloc(f->size);
    if (!f->bytes || fread(f->bytes, 1, f->size, fp) != f->size) {
        fclose(fp);
        st_close(f);
        return st_fail(err, errlen, "%s: read error", path);
    }
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->bytes[i];
    if (hlen == 0 || hlen > f->size - 8) {
        st_close(f);
        return st_fail(err, errlen, "%s: header length %llu does not fit in %zu bytes", path,
                       (unsigned long long)hlen, f->size);
    }
    char jerr[160] = "";
    if (json_parse((const char *)f->bytes + 8, (size_t)hlen, &f->header, jerr, sizeof jerr)) {
        st_close(f);
        return st_fail(err, errlen, "%s: bad JSON header: %s", path, jerr);
    }
    if (f->header.type != JSON_OBJECT) {
        st_close(f);
        return st_fail(err, errlen, "%s: header is not a JSON object", path);
    }
    const size_t data = 8 + (size_t)hlen, data_len = f->size - data;
    f->tensors = calloc(f->header.count ? f->header.count : 1, sizeof *f->tensors);
    if (!f->tensors) { st_close(f); return st_fail(err, errlen, "out of memory"); }
    for (size_t i = 0; i < f->header.count; i++) {
        const char *name = f->header.keys[i];
        const json_value *v = &f->header.items[i];
        if (strcmp(name, "__metadata__") == 0) {
            int ok = v->type == JSON_OBJECT;
            for (size_t k = 0; ok && k < v->count; k++) ok = v->items[k].type == JSON_STRING;
            if (!ok) { st_close(f); return st_fail(err, errlen, "%s: __metadata__ must map strings to strings", path); }
            continue;
        }
        const json_value *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"), *off = json_get(v, "data_offsets");
        if (!dt || dt->type != JSON_STRING || !sh || sh->type != JSON_ARRAY || !off || off->type != JSON_ARRAY ||
            off->count != 2) {
            st_close(f);
            return st_fail(err, errlen, "%s: tensor '%s' lacks dtype/shape/data_offsets", path, name);
        }
        st_tensor *t = &f->tensors[f->count];
        t->name = f->header.keys[i];
        size_t es = dtype_size(dt->string, &t->dtype);
        snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->string);
        if (es == 0) { st_close(f); return st_fail(err, errlen, "%s: tensor '%s' has unknown dtype '%s'", path, name, dt->string); }
        if (sh->count > 8) { st_close(f); return st_fail(err, errlen, "%s: tensor '%s' has %zu dims", path, name, sh->count); }
        t->ndim = (int)sh->count;
        t->numel = 1;
        for (size_t d = 0; d < sh->count; d++) {
            const json_value *x = &sh->items[d];
            if (x->type != JSON_NUMBER || !x->is_integer || x->integer < 0 || x->integer > (int64_t)1 << 40) {
                st_close(f);
                return st_fail(err, errlen, "%s: tensor '%s' has a bad shape entry", path, name);
            }
            t->shape[d] = x->integer;
            t->numel *= (size_t)x->integer;
        }
        const json_value *a = &off->items[0], *b = &off->items[1];
        if (a->type != JSON_NUMBER || b->type != JSON_NUMBER || !a->is_integer || !b->is_integer || a->integer < 0 ||
            b->integer < a->integer || (uint64_t)b->integer > data_len) {
            st_close(f);
            return st_fail(err, errlen, "%s: tensor '%s' has data_offsets outside the data section (%zu bytes)", path,
                           name, data_len);
        }
        if ((uint64_t)(b->integer - a->integer) != (uint64_t)t->numel * es) {
            st_close(f);
            return st_fail(err, errlen, "%s: tensor '%s': %lld bytes for %zu elements of %s", path, name,
                           (long long)(b->integer - a->integer), t->numel, dt->string);
        }
        t->begin = data + (size_t)a->integer;
        t->end = data + (size_t)b->integer;
        f->count++;
    }
    return 0;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    const json_value *m = json_get(json_get(&f->header, "__metadata__"), key);
    return m && m->type == JSON_STRING ? m->string : NULL;
}

float *st_read_f32(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_F32) return NULL;
    float *out = malloc(t->numel ? t->numel * sizeof *out : 1);
    if (!out) return NULL;
    memcpy(out, f->bytes + t->begin, t->numel * sizeof *out); /* memcpy: the data may be unaligned */
    if (n) *n = t->numel;
    return out;
}

int64_t *st_read_i64(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_I64) return NULL;
    int64_t *out = malloc(t->numel ? t->numel * sizeof *out : 1);
    if (!out) return NULL;
    memcpy(out, f->bytes + t->begin, t->numel * sizeof *out);
    if (n) *n = t->numel;
    return out;
}

/* ---- writing ------------------------------------------------------------------------------ */
typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_string(sbuf *b, const char *s) {
    sb_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') sb_str(b, "\\\"");
        else if (c == '\\') sb_str(b, "\\\\");
        else if (c == '\n') sb_str(b, "\\n");
        else if (c < 0x20) sb_fmt(b, "\\u%04x", c);
        else sb_put(b, (const char *)&c, 1);
    }
    sb_str(b, "\"");
}

int st_write(const char *path, const st_out_tensor *tensors, size_t n, const char *const *meta, size_t n_meta,
             char *err, size_t errlen) {
    sbuf h = {0};
    sb_str(&h, "{");
    int first = 1;
    if (n_meta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, meta[2 * i]);
            sb_str(&h, ":");
            sb_json_string(&h, meta[2 * i + 1]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_string(&h, tensors[i].name);
        sb_str(&h, ":{\"dtype\":");
        sb_json_string(&h, tensors[i].dtype);
        sb_str(&h, ",\"shape\":[");
        for (int d = 0; d < tensors[i].ndim; d++) sb_fmt(&h, d ? ",%lld" : "%lld", (long long)tensors[i].shape[d]);
        sb_fmt(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + tensors[i].nbytes);
        off += tensors[i].nbytes;
    }
    sb_str(&h, "}");
    while (h.len % 8) sb_str(&h, " ");
    if (h.oom) { free(h.p); return st_fail(err, errlen, "out of memory"); }
    FILE *fp = fopen(path, "wb");
    if (!fp) { free(h.p); return st_fail(err, errlen, "%s: %s", path, strerror(errno)); }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(h.p, 1, h.len, fp) == h.len;
    for (size_t i = 0; ok && i < n; i++)
        ok = tensors[i].nbytes == 0 || fwrite(tensors[i].data, 1, tensors[i].nbytes, fp) == tensors[i].nbytes;
    ok = (fclose(fp) == 0) && ok;
    free(h.p);
    return ok ? 0 : st_fail(err, errlen, "%s: write error", path);
}
