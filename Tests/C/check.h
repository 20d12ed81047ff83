/*
 * check.h — a tiny assertion kit for the C tests of libijepa.
 *
 *   CHECK(cond, fmt, ...)      records a failure (file:line, the condition, the message), goes on
 *   REQUIRE(cond, fmt, ...)    same, then returns from main-like functions with exit status 1
 *   CHECK_OK(expr)             expr is an ijepa status; failure prints the status and last error
 *   REQUIRE_OK(expr)           same, fatal
 *   CHECK_NEAR(a, b, tol, ...) |a - b| <= tol
 *   check_summary(name)        prints "<name>: N checks, M failed" and returns the exit status
 *
 * Every test program is one process; a crash is reported as a failure by the Makefile.
 */
#ifndef IJEPA_TESTS_CHECK_H
#define IJEPA_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ijepa.h>

/* _Atomic: checks may run from several threads (test_threads, test_errors). */
static _Atomic long check_count = 0;
static _Atomic long check_failures = 0;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        check_count++;                                                                    \
        if (!(cond)) {                                                                    \
            check_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

#define REQUIRE(cond, ...)                                                                \
    do {                                                                                  \
        long check_before_ = check_failures;                                              \
        CHECK(cond, __VA_ARGS__);                                                         \
        if (check_failures != check_before_) {                                            \
            fprintf(stderr, "%s:%d: fatal, stopping this test\n", __FILE__, __LINE__);    \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

#define CHECK_OK(expr)                                                                    \
    do {                                                                                  \
        int check_st_ = (expr);                                                           \
        CHECK(check_st_ == IJEPA_OK, "%s returned %d (%s): %s", #expr, check_st_,         \
              ijepa_status_string(check_st_), ijepa_last_error());                        \
    } while (0)

#define REQUIRE_OK(expr)                                                                  \
    do {                                                                                  \
        int check_st_ = (expr);                                                           \
        REQUIRE(check_st_ == IJEPA_OK, "%s returned %d (%s): %s", #expr, check_st_,       \
                ijepa_status_string(check_st_), ijepa_last_error());                      \
    } while (0)

#define CHECK_NEAR(a, b, tol, ...)                                                        \
    do {                                                                                  \
        double check_a_ = (double)(a), check_b_ = (double)(b), check_t_ = (double)(tol);  \
        CHECK(fabs(check_a_ - check_b_) <= check_t_, "%g vs %g (tol %g): ", check_a_,     \
              check_b_, check_t_);                                                        \
        if (!(fabs(check_a_ - check_b_) <= check_t_)) {                                   \
            fprintf(stderr, "    ");                                                      \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* Prints the summary of this program and returns its exit status (0 = all checks passed). */
static inline int check_summary(const char *name) {
    long n = check_count, f = check_failures;
    printf("%s: %ld checks, %ld failed\n", name, n, f);
    return f == 0 ? 0 : 1;
}

#endif
